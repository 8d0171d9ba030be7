"""value_refit_mode=authors (the authors' refit, va_mbpo model_trainer.py l.151-204) on both agents."""

import copy

import numpy as np
import pytest
import torch

from tests.mbpo.agent_fixtures import with_agent
from tests.mbpo.conftest import same, snapshot
from vaml_ext.mbpo import plugin
from vaml_ext.mbpo.agents import adapter_for
from vaml_ext.mbpo.buffers import clear_buffer
from vaml_ext.mbpo.refit import StaleValueRefit
from vaml_ext.mbpo.refit_authors import AuthorsValueRefit, refit_start_count

KINDS = ["pranz24", "yarats"]


@pytest.fixture(params=KINDS)
def ctx(request, mbpo_ctx):
    return with_agent(mbpo_ctx, request.param)


def _mark_buffer(buf):
    """Fill the agent's SAC buffer with rows no model rollout can produce."""
    n = len(buf)
    buf.obs[:n] = 1e6
    return n


def test_start_count_is_the_authors_rounding(mbpo_ctx):
    dyn = mbpo_ctx.dynamics_model
    assert dyn.model.num_members == 7
    dyn.model.elite_models = None
    assert refit_start_count(50000, dyn) == 50000 + 7 - 50000 % 7
    assert refit_start_count(70, dyn) == 77  # m | N still adds m (model_trainer.py l.190-194)
    dyn.model.elite_models = [0, 1, 2, 3, 4]
    assert refit_start_count(50000, dyn) == 50005


def test_buffer_wiped_then_refilled_from_model_rollouts(ctx):
    buf = ctx.sac_buffer
    assert _mark_buffer(buf) == 100
    refit = AuthorsValueRefit(interval=5, num_updates=5, num_starts=70)
    refit.on_model_train_begin(ctx)
    for _ in range(5):
        refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 1 and refit.critic_updates == 5
    n = len(buf)
    assert n == refit.last_buffer_size and 77 <= n <= 3 * 77  # 77 starts, rollout length 3
    stored = buf.get_all()
    assert (np.abs(stored.obs) < 1e5).all()  # nothing of the old contents survives
    real = {tuple(o) for o in ctx.replay_buffer.get_all().obs.astype(np.float32)}
    assert all(tuple(o) in real for o in stored.obs[:77])  # the first step starts at real states
    assert not any(tuple(o) in real for o in stored.next_obs[:77])  # ... and moves by the model


def test_clear_buffer_both_buffer_types(mbpo_ctx):
    from mbrl.third_party.pytorch_sac.replay_buffer import ReplayBuffer

    clear_buffer(mbpo_ctx.sac_buffer)
    assert len(mbpo_ctx.sac_buffer) == 0
    yb = ReplayBuffer((4,), (1,), 50, "cpu")
    z = np.zeros((60, 4), np.float32)
    yb.add_batch(
        z, np.zeros((60, 1), np.float32), np.zeros((60, 1), np.float32), z, np.zeros((60, 1)), np.zeros((60, 1))
    )
    assert len(yb) == 50
    clear_buffer(yb)
    assert len(yb) == 0
    with pytest.raises(TypeError, match="value_refit_mode=authors"):
        clear_buffer(object())


@pytest.mark.parametrize("clip", [1e-3, None])
def test_critic_gradient_clip_applied(ctx, clip):
    ag = adapter_for(ctx.agent)
    norms = []

    def spy(opt, args, kwargs):  # runs at step time, after the refit's clip
        norms.append(torch.norm(torch.stack([p.grad.norm() for p in ag.critic.parameters()])).item())

    h = ag.critic_optimizer.register_step_pre_hook(spy)
    try:
        refit = AuthorsValueRefit(interval=1, num_updates=3, num_starts=35, critic_grad_clip=clip)
        refit.on_model_train_begin(ctx)
        refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    finally:
        h.remove()
    assert len(norms) == 3
    if clip is None:
        assert max(norms) > 1e-2  # so the clipped case below can fail
    else:
        assert max(norms) <= clip * (1 + 1e-4)


def test_counter_restarts_at_each_model_training_call(ctx):
    refit = AuthorsValueRefit(interval=5, num_updates=1, num_starts=35)
    refit.on_model_train_begin(ctx)
    for _ in range(4):
        refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    refit.on_model_batch(ctx, 0, 0.0, {}, "eval")  # eval batches do not count
    refit.on_model_train_begin(ctx)  # a new model-training call: the count starts again
    for _ in range(4):
        refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 0  # a running count would have refit at the 5th train batch
    refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 1


def test_target_update_follows_the_restarted_critic_counter(ctx):
    """Soft target update when the restarted counter % frequency == 0 (l.202): step 0 of
    every model-training call updates it."""
    ag = adapter_for(ctx.agent)
    every = ag.target_update_every
    refit = AuthorsValueRefit(interval=1, num_updates=1, num_starts=35)
    changed = []
    for _call in range(2):
        refit.on_model_train_begin(ctx)
        for _ in range(2):
            t = snapshot(ag.critic_target)
            refit.on_model_batch(ctx, 0, 0.0, {}, "train")
            changed.append(not same(t, snapshot(ag.critic_target)))
    expected = [True, every == 1, True, every == 1]
    assert changed == expected, (every, changed)


@pytest.mark.parametrize("mode", ["separate", "authors"])
def test_policy_and_alpha_untouched_in_both_modes(ctx, mode):
    ag = adapter_for(ctx.agent)
    actor, temp = snapshot(ag.actor), ag.temperature_state()
    actor_opt = copy.deepcopy(ag.actor_optimizer.state_dict())
    critic = snapshot(ag.critic)
    if mode == "authors":
        refit = AuthorsValueRefit(interval=1, num_updates=3, num_starts=35)
        refit.on_model_train_begin(ctx)
    else:
        refit = StaleValueRefit(interval=1, num_updates=3, num_starts=35, batch_size=32)
        refit.on_train_begin(ctx)
    refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 1
    assert not same(critic, snapshot(ag.critic))
    assert same(actor, snapshot(ag.actor))
    assert all(torch.equal(a, b) for a, b in zip(temp, ag.temperature_state()))
    assert str(ag.actor_optimizer.state_dict()) == str(actor_opt)


def test_mode_selected_by_config(mbpo_ctx):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    cfg.overrides.value_refit_mode = "authors"
    cbs = plugin.make_callbacks(cfg, mbpo_ctx)
    assert [type(c).__name__ for c in cbs] == ["AuthorsValueRefit", "ValueAwareDiagnostics", "RunRecorder"]
    assert cbs[0].num_starts == 1000 and cbs[0].critic_grad_clip == 2.0
    cfg.overrides.value_refit_mode = "wipe"
    with pytest.raises(ValueError, match=r"overrides\.value_refit_mode='wipe'.*separate, authors"):
        plugin.validate_config(cfg)


def test_authors_refit_resumes_its_schedule_where_it_stopped(monkeypatch):
    """A refit restored from its state mid-training fires at the same model steps, with the
    same critic counter (it decides the target updates, l.202), as one never interrupted."""
    events = []

    def schedule_only(self, ctx):  # what the checkpoint must carry: when, and the counters seen
        events.append((self.model_steps, self.critic_steps, self.refits))
        self.critic_steps += self.num_updates
        self.critic_updates += self.num_updates
        self.refits += 1

    monkeypatch.setattr(AuthorsValueRefit, "refit", schedule_only)

    def train(refit, batches, begin=True):
        if begin:
            refit.on_model_train_begin(None)
        for _ in range(batches):
            refit.on_model_batch(None, 0, 0.0, {}, "train")

    full = AuthorsValueRefit(interval=3, num_updates=2)
    train(full, 4)
    train(full, 10)  # a second ModelTrainer.train call restarts the counters (l.151-152)
    uninterrupted = list(events)
    events.clear()
    first = AuthorsValueRefit(interval=3, num_updates=2)
    train(first, 4)
    train(first, 5)
    resumed = AuthorsValueRefit(interval=3, num_updates=2)
    resumed.load_state_dict(first.state_dict())  # killed after 5 batches of the second call
    train(resumed, 5, begin=False)
    assert len(uninterrupted) == 4 and events == uninterrupted
    assert resumed.state_dict() == full.state_dict()
