"""The callback seam of the plugins patch (mbrl.util.plugins): explicit hook forwarding."""

import pytest
from mbrl.util.plugins import HOOKS, Callback, CallbackList

from vaml_ext.mbpo.diagnostics import ValueAwareDiagnostics
from vaml_ext.mbpo.refit import StaleValueRefit


class Recorder(Callback):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def on_train_begin(self, ctx):
        self.log.append((self.name, "on_train_begin", ctx))

    def on_model_batch(self, ctx, epoch, loss, meta, mode):
        self.log.append((self.name, "on_model_batch", (epoch, loss, meta, mode)))

    def on_train_end(self, ctx):
        self.log.append((self.name, "on_train_end", ctx))


def test_every_hook_is_forwarded_to_each_callback_in_order():
    log = []
    cbs = CallbackList([Recorder("a", log), Recorder("b", log)])
    for hook in HOOKS:
        args = ("ctx", 3, 0.5, {"m": 1}, "train") if hook == "on_model_batch" else ("ctx",)
        getattr(cbs, hook)(*args)  # base-class no-ops for the hooks Recorder lacks
    assert log == [
        ("a", "on_train_begin", "ctx"),
        ("b", "on_train_begin", "ctx"),
        ("a", "on_model_batch", (3, 0.5, {"m": 1}, "train")),
        ("b", "on_model_batch", (3, 0.5, {"m": 1}, "train")),
        ("a", "on_train_end", "ctx"),
        ("b", "on_train_end", "ctx"),
    ]
    assert len(cbs) == 2


def test_misspelt_hook_fails_loudly():
    class Typo(Callback):
        def on_epoch_ends(self, ctx):  # not a hook: would silently never run
            pass

    with pytest.raises(TypeError, match="on_epoch_ends.*hooks are: on_train_begin"):
        CallbackList([Typo()])


def test_no_undeclared_hooks_on_the_list():
    cbs = CallbackList([])
    with pytest.raises(AttributeError):
        _ = cbs.on_env_step  # removed: nothing in the MBPO loop calls it
    assert {n for n in dir(Callback) if n.startswith("on_")} == set(HOOKS)


def test_vaml_callbacks_define_only_hooks():
    for cls in (ValueAwareDiagnostics, StaleValueRefit):
        assert {n for n in dir(cls) if n.startswith("on_")} <= set(HOOKS), cls
