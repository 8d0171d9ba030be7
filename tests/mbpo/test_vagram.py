"""VaGraM in MBPO (``overrides.model_loss=vagram``, vaml_ext.mbpo.vagram) on real mbrl objects.

Critics with a known gradient stand in for the SAC critic where a test needs the exact
weights: ``Q(s, a) = -‖s‖²`` (``∇_s Q = -2 s``) and linear critics ``Q = w·s``.
"""

import numpy as np
import pytest
import torch

from vaml_ext.losses import make_loss


class KnownCritic:
    """An adapter whose heads have known state gradients: ``Q_h(s, a) = c_h · q(s) + a.sum()``."""

    def __init__(self, kind="quadratic", weights=None, heads=4):
        self.kind, self.weights, self.heads = kind, weights, heads
        self.calls = 0

    def modules(self):
        return []

    def mean_action(self, s):
        return torch.zeros(s.shape[0], 1) + s.sum(-1, keepdim=True)  # depends on s: must be held fixed

    def q_heads(self, s, a, target_heads=True):
        self.calls += 1
        n = self.heads if target_heads else self.heads // 2
        if self.kind == "quadratic":
            q = -(s**2).sum(-1)
        else:
            q = s @ self.weights
        return torch.stack([(h + 1) * q + a.sum(-1) for h in range(n)], 0)


def expected_grad(kind, x, heads=4, weights=None):
    base = -2 * x if kind == "quadratic" else weights.expand_as(x)
    return torch.stack([(h + 1) * base for h in range(heads)], 0)


# -- the loss: closed forms ------------------------------------------------------------


@pytest.mark.parametrize("bounded", [True, False])
def test_loss_and_gradient_match_the_formula(bounded):
    g = torch.Generator().manual_seed(0)
    err = torch.randn(16, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 16, 3, generator=g, dtype=torch.float64)
    loss = make_loss("vagram", bounded=bounded)(error=err, value_grad=w)
    if bounded:  # mean_b mean_d (1/H) Σ_h (w e)²; d/de = 2 mean_h(w²) e / (B d)
        expect = ((w * err) ** 2).mean(0).mean(-1).mean()
        grad = 2 * (w**2).mean(0) * err / (16 * 3)
    else:  # mean_b (1/H) Σ_h (w·e)²; d/de = 2 mean_h (w·e) w / B
        dot = (w * err).sum(-1)
        expect = (dot**2).mean(0).mean()
        grad = 2 * (dot.unsqueeze(-1) * w).mean(0) / 16
    torch.testing.assert_close(loss, expect, rtol=1e-6, atol=1e-12)
    loss.backward()
    torch.testing.assert_close(err.grad, grad.detach(), rtol=1e-6, atol=1e-12)


def test_errors_where_the_value_is_flat_do_not_count_but_mle_sees_them():
    """∂V/∂s_2 = 0 (a distractor): an error there leaves VaGraM unchanged, MSE not."""
    w = torch.tensor([1.0, -2.0, 0.0]).expand(4, 8, 3).clone()
    err = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    moved = err.clone()
    moved[:, 2] += 5.0
    for bounded in (True, False):
        loss = make_loss("vagram", bounded=bounded)
        assert loss(error=moved, value_grad=w).item() == pytest.approx(loss(error=err, value_grad=w).item(), rel=1e-7)
    mse = make_loss("mle")
    assert mse(nll=(moved**2).sum(-1)).item() > mse(nll=(err**2).sum(-1)).item() + 1.0


def test_weights_are_constants_and_shapes_are_checked():
    w = torch.ones(4, 8, 3, requires_grad=True)
    err = torch.ones(8, 3, requires_grad=True)
    make_loss("vagram")(error=err, value_grad=w).backward()
    assert w.grad is None and err.grad is not None
    with pytest.raises(ValueError, match="value_grad must be"):
        make_loss("vagram")(error=err, value_grad=torch.ones(4, 8, 2))


def test_vagram_takes_no_refit_but_the_model_advantage_losses_do():
    from vaml_ext.losses import get_loss_class

    assert not get_loss_class("vagram").takes_refit
    assert get_loss_class("ma_l1").takes_refit and get_loss_class("ma_vaml").takes_refit
    assert not get_loss_class("mle").takes_refit
    assert make_loss("vagram").coeff == 1.0  # VaGraM's loss has no coefficient


# -- value gradients -------------------------------------------------------------------


def test_value_gradients_hold_the_action_fixed():
    from vaml_ext.mbpo.vagram import value_gradients

    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
    g = value_gradients(KnownCritic("quadratic"), x)
    # the mean action depends on s; had its gradient flowed, each entry would be off by one
    torch.testing.assert_close(g, expected_grad("quadratic", x))
    w = torch.tensor([0.5, -1.0, 2.0])
    torch.testing.assert_close(value_gradients(KnownCritic("linear", w), x), expected_grad("linear", x, weights=w))
    assert value_gradients(KnownCritic("quadratic"), x, target_heads=False).shape[0] == 2


def test_quantile_clip_matches_numpy():
    from vaml_ext.mbpo.vagram import clip_to_quantile

    g = torch.randn(4, 50, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = clip_to_quantile(g, 0.95)
    for h in range(4):
        norms = g[h].norm(dim=-1).numpy()
        bound = np.quantile(norms, 0.95)
        expect = np.where((norms < bound)[:, None], g[h].numpy(), bound / norms[:, None] * g[h].numpy())
        np.testing.assert_allclose(out[h].numpy(), expect, rtol=1e-12)
    assert (out.norm(dim=-1) <= torch.quantile(g.norm(dim=-1), 0.95, dim=1, keepdim=True) + 1e-12).all()
    assert clip_to_quantile(g, None) is g


# -- the MBPO update on real mbrl objects ----------------------------------------------


@pytest.fixture
def vagram_ctx(tmp_path):
    import mbrl.models
    from mbrl.util.plugins import TrainingContext

    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, random_data_start

    cfg = compose(
        "mbpo_cartpole",
        ["device=cpu", "seed=0", *SMOKE_OVERRIDES, "overrides.model_loss=vagram", "dynamics_model.deterministic=true"],
    )
    env, term_fn, agent, dyn, rb = random_data_start(cfg, 300, seed=0)
    ctx = TrainingContext(cfg=cfg, work_dir=str(tmp_path), env=env, agent=agent, dynamics_model=dyn, replay_buffer=rb)
    ctx.env_steps = 1000  # past the MSE warm-up unless a test says otherwise
    ctx.model_trainer = mbrl.models.ModelTrainer(dyn, optim_lr=1e-3, weight_decay=1e-5)
    return ctx


def _bootstrap_batch(ctx, n=16):
    import mbrl.util.common

    train, _ = mbrl.util.common.get_basic_buffer_iterators(
        ctx.replay_buffer, n, 0.0, ensemble_size=len(ctx.dynamics_model.model), shuffle_each_epoch=True
    )
    return next(iter(train))


def _update(ctx, mode="corrected", clip=None):
    from vaml_ext.mbpo.vagram import VaGraMModelUpdate

    upd = VaGraMModelUpdate(ctx, mode=mode, clip_quantile=clip)
    upd.adapter = KnownCritic("quadratic")
    return upd


def _obs_target(ctx, batch):
    from vaml_ext.mbpo.model_loss import member_outputs

    _, _, obs, target = member_outputs(ctx.dynamics_model, batch)
    return obs, target


def test_corrected_weights_are_taken_at_each_members_own_next_state(vagram_ctx):
    batch = _bootstrap_batch(vagram_ctx)
    obs, target = _obs_target(vagram_ctx, batch)
    assert not torch.equal(obs[0], obs[1])  # bootstrap: the members hold other rows
    g = _update(vagram_ctx)._weights(obs, target, shared=False, train=True)
    next_obs = torch.as_tensor(batch.next_obs, dtype=torch.float32)
    torch.testing.assert_close(g, expected_grad("quadratic", next_obs))


def test_published_weights_are_taken_at_the_state_difference_and_member_0s_are_reused(vagram_ctx):
    batch = _bootstrap_batch(vagram_ctx)
    obs, target = _obs_target(vagram_ctx, batch)
    upd = _update(vagram_ctx, mode="published")
    upd.on_model_train_begin(vagram_ctx)
    diff = torch.as_tensor(batch.next_obs - batch.obs, dtype=torch.float32)
    # first epoch of a training call: each member's own rows, at s' - s
    torch.testing.assert_close(upd._weights(obs, target, shared=False, train=True), expected_grad("quadratic", diff))
    upd.on_model_batch(vagram_ctx, 0, 0.0, {}, "eval")  # the epoch's validation ran
    g = upd._weights(obs, target, shared=False, train=True)
    member0 = expected_grad("quadratic", diff[0])
    for e in range(obs.shape[0]):
        torch.testing.assert_close(g[:, e], member0)
    # validation then reuses the last training batch's member-0 weights, not its own rows
    val = upd._weights(obs[:1].expand_as(obs), target[:1].expand_as(target), shared=True, train=False)
    torch.testing.assert_close(val[:, 3], member0)
    # a new training call starts over with each member's own rows
    upd.on_model_train_begin(vagram_ctx)
    torch.testing.assert_close(upd._weights(obs, target, shared=False, train=True), expected_grad("quadratic", diff))


def test_update_changes_the_model_only_and_reports_finite_terms(vagram_ctx):
    from tests.mbpo.conftest import same, snapshot

    batch = _bootstrap_batch(vagram_ctx)
    dyn = vagram_ctx.dynamics_model
    from vaml_ext.mbpo.vagram import VaGraMModelUpdate

    upd = VaGraMModelUpdate(vagram_ctx)  # the real SAC critic
    sac = vagram_ctx.agent.sac_agent
    before_model, before_critic = snapshot(dyn), snapshot(sac.critic)
    loss, meta = upd(batch, vagram_ctx.model_trainer.optimizer)
    assert np.isfinite(loss) and meta["va_loss"] > 0 and meta["mse_warmup"] == 0.0
    assert not same(before_model, snapshot(dyn)) and same(before_critic, snapshot(sac.critic))
    vagram_ctx.env_steps = 0  # inside the first epoch: the MSE warm-up is added
    _, meta = upd(batch, vagram_ctx.model_trainer.optimizer)
    assert meta["mse_warmup"] > 0


def test_validation_and_elites_use_the_vagram_score(vagram_ctx):
    """The seam: ModelTrainer.evaluate scores with update_fn.eval_score when it exists."""
    import mbrl.util.common

    from vaml_ext.mbpo.vagram import VaGraMModelUpdate

    upd = VaGraMModelUpdate(vagram_ctx)
    trainer = vagram_ctx.model_trainer
    trainer.update_fn = upd
    _, val = mbrl.util.common.get_basic_buffer_iterators(
        vagram_ctx.replay_buffer, 32, 0.2, ensemble_size=len(vagram_ctx.dynamics_model.model)
    )
    scores = trainer.evaluate(val)
    expect = torch.cat([upd.eval_score(b)[0] for b in val], dim=1).mean(dim=(1, 2))
    torch.testing.assert_close(scores, expect)
    trainer.update_fn = None  # upstream's score (MSE) differs
    assert not torch.allclose(trainer.evaluate(val), expect)


def test_no_refit_callback_runs_for_vagram_but_does_for_ma_l1(vagram_ctx):
    from vaml_ext.mbpo import plugin
    from vaml_ext.mbpo.refit import ValueRefit
    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose
    from vaml_ext.mbpo.vagram import VaGraMModelUpdate

    vagram_ctx.model_trainer.update_fn = plugin.model_losses["vagram"](vagram_ctx)
    cbs = plugin.make_callbacks(vagram_ctx.cfg, vagram_ctx)
    assert not any(isinstance(cb, ValueRefit) for cb in cbs)
    assert any(isinstance(cb, VaGraMModelUpdate) for cb in cbs)
    cfg = compose("mbpo_cartpole", ["device=cpu", "seed=0", *SMOKE_OVERRIDES, "overrides.model_loss=ma_l1"])
    vagram_ctx.cfg, vagram_ctx.model_trainer.update_fn = cfg, None
    assert any(isinstance(cb, ValueRefit) for cb in plugin.make_callbacks(cfg, vagram_ctx))


@pytest.mark.parametrize(
    "extra, match",
    [
        ((), "dynamics_model.deterministic=true"),
        (("dynamics_model.deterministic=true", "overrides.profile=paper"), "vagram_mode=published"),
        (("dynamics_model.deterministic=true", "overrides.vagram_mode=paper"), "vagram_mode='paper' is invalid"),
        (("dynamics_model.deterministic=true", "overrides.vagram_clip_quantile=1.5"), "vagram_clip_quantile"),
        (("dynamics_model.deterministic=true", "overrides.distractor_dims=-1"), "distractor_dims"),
    ],
)
def test_bad_settings_fail_naming_the_key(extra, match):
    from vaml_ext.mbpo import plugin
    from vaml_ext.mbpo.runner import compose

    cfg = compose("mbpo_cartpole", ["device=cpu", "overrides.model_loss=vagram", *extra])
    with pytest.raises(ValueError, match=match):
        plugin.validate_config(cfg)


def test_coefficient_is_one_unless_set(vagram_ctx):
    from vaml_ext.mbpo import plugin
    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose

    assert plugin.model_losses["vagram"](vagram_ctx).loss_fn.coeff == 1.0
    vagram_ctx.cfg = compose(
        "mbpo_cartpole",
        ["device=cpu", *SMOKE_OVERRIDES, "overrides.model_loss=vagram", "dynamics_model.deterministic=true",
         "overrides.va_loss_coeff=0.5"],
    )  # fmt: skip
    assert plugin.model_losses["vagram"](vagram_ctx).loss_fn.coeff == 0.5


def test_cartpole_vagram_run_with_distractors_completes(tmp_path):
    """The acceptance run (tiny budget): finite losses, returns recorded, no refit."""
    import csv

    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, read_results, run_mbpo

    cfg = compose(
        "mbpo_cartpole",
        ["device=cpu", "seed=0", *SMOKE_OVERRIDES, "overrides.model_loss=vagram", "dynamics_model.deterministic=true",
         "overrides.distractor_dims=4"],
    )  # fmt: skip
    run_mbpo(cfg, tmp_path, silent=False)
    rows = read_results(tmp_path)
    assert len(rows) == 2 and all(np.isfinite(r["episode_reward"]) for r in rows)
    with open(tmp_path / "va_model.csv") as f:
        diag = list(csv.DictReader(f))
    assert diag and all(float(r["refits_total"]) == 0 for r in diag)
    assert all(np.isfinite(float(r["val_mse"])) for r in diag)
    with open(tmp_path / "model_train.csv") as f:
        losses = [float(r["model_loss"]) for r in csv.DictReader(f)]
    assert losses and all(np.isfinite(v) for v in losses)
