"""Input checks of the MBPO experiment scripts and the demo: bad arguments fail before any run."""

import pytest

from tests.support import load_exp_script
from vaml_ext.mbpo.runner import REGRESSIONS, regression_config


def _load(name):
    return load_exp_script("mbpo", name)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--sizes", "0"], "--sizes must be positive"),
        (["--regression", "nope"], "invalid choice"),
        (["--sizes"], "nothing to run"),
        (["--sizes", "--methods", "mle", "nope"], "unknown --methods ['nope']"),
    ],
)
def test_refit_learning_rejects_bad_input(argv, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _load("refit_learning").main([*argv, "--work", str(tmp_path)])
    assert e.value.code == 2 and needle in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing may be written before the arguments are valid"


def test_make_baselines_rejects_unknown_regression(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _load("make_baselines").main(["--regression", "nope", "--out", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--losses", "mle", "nope"], "unknown loss"),
        (["--steps", "0"], "--steps must be positive"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--env", "mbpo_nope"], "valid: mbpo_ant, mbpo_cartpole"),
    ],
)
def test_demo_rejects_bad_input(argv, needle, tmp_path, capsys):
    from vaml_ext import demo

    with pytest.raises(SystemExit) as e:
        demo.main([*argv, "--out", str(tmp_path / "demo")])
    assert e.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_regression_settings_compose():
    """Every named regression composes; cartpole_2k is the Fig. 3 short preset cut at 2k steps."""
    for name in REGRESSIONS:
        cfg = regression_config(name, "ma_l1", 3)
        assert cfg.seed == 3 and cfg.overrides.model_loss == "ma_l1"
    cfg = regression_config("cartpole_2k", "mle", 0)
    assert (
        cfg.overrides.num_steps,
        cfg.overrides.num_sac_updates_per_step,
        cfg.overrides.num_epochs_train_model,
        cfg.algorithm.initial_exploration_steps,
    ) == (2000, 10, 20, 5000)
    with pytest.raises(KeyError, match="valid: inv_pendulum_1k"):
        regression_config("nope", "mle", 0)


def test_refit_learning_plots_every_variant(tmp_path):
    from PIL import Image

    mod = _load("refit_learning")
    curves = {("mle", s): [20.0 + 10 * e + s for e in range(10)] for s in range(3)}
    curves.update({("ma_l1", s): [20.0 + 5 * e for e in range(10 - s)] for s in range(3)})  # unequal lengths
    out = tmp_path / "curves.png"
    mod.plot_curves(curves, ["mle", "ma_l1"], [0, 1, 2], out, "cartpole_2k test", last=5)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 500
    with pytest.raises(
        ValueError, match="no curves of 'nope'"
    ):  # a variant with no runs is a caller error, not an empty plot
        mod.plot_curves(curves, ["nope"], [0], tmp_path / "x.png", "t")


def test_refit_learning_score_stat_is_repeatable_and_leaves_the_rng_alone():
    import numpy as np

    from vaml_ext.exp.aggregate.stats import iqm

    mod = _load("refit_learning")
    x = [114.6, 126.6, 98.8, 191.6, 119.2]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    st = mod.score_stat(x)
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's RNG is restored
    assert st == mod.score_stat(x)  # seeded: the same CI every call
    assert st.n == 5 and st.iqm == pytest.approx(iqm(np.array(x)))
    assert min(x) <= st.lo < st.iqm < st.hi <= max(x)
    tight = mod.score_stat([120.0, 121.0, 119.0, 120.5, 119.5])
    assert tight.hi - tight.lo < st.hi - st.lo
