"""The vaml plugin inside real mbrl-lib MBPO objects: losses, gradients, refit, validation."""

import copy
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.mbpo.conftest import same, snapshot
from vaml_ext.mbpo import plugin
from vaml_ext.mbpo.model_loss import NonFiniteModelLoss, ValueAwareModelUpdate, value_aware_terms
from vaml_ext.mbpo.refit import StaleValueRefit
from vaml_ext.mbpo.values import make_estimator, squashed_action


def _batch(ctx, n=64):
    return ctx.replay_buffer.sample(n)


def test_advantage_matches_closed_form_for_linear_value(mbpo_ctx):
    """V(s) = w·s  =>  E[V(ŝ)] = w·(s + μ_Δ) and A = w·(s' − s − μ_Δ) (k -> large)."""
    ctx = mbpo_ctx
    dyn = ctx.dynamics_model
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    batch = _batch(ctx, 35)
    with torch.no_grad():
        model_in, target = dyn._process_batch(batch)
        mean, logvar = dyn.model.forward(model_in.unsqueeze(0), use_propagation=False)
        g = torch.Generator().manual_seed(0)
        k = 4000
        terms = value_aware_terms(dyn, batch, lambda t, p, _g: (t @ w, p @ w), num_samples=k, generator=g)
    exact = (target[..., :4].unsqueeze(0) - mean[..., :4]) @ w  # [E, B]
    # Monte-Carlo error of the k-sample mean: sd = sqrt(Σ w_i² σ_i²) / sqrt(k); allow 5 sd
    sd = torch.sqrt((w**2 * logvar[..., :4].exp()).sum(-1) / k)
    err = (terms["advantage"] - exact).abs()
    assert (err <= 5 * sd + 1e-5).all(), (err / sd).max()
    # reward: the k-sample mean of (r̂ − r)² estimates (μ_r − r)² + σ_r² (r̂ = μ_r + σ_r ε)
    reward_err = terms["reward_sq_err"]
    d, var = mean[..., 4] - target[..., 4].unsqueeze(0), logvar[..., 4].exp()
    expected = d**2 + var
    sd_r = torch.sqrt((4 * d**2 * var + 2 * var**2) / k)  # sd of the mean of k draws of (d + σε)²
    assert reward_err.shape == exact.shape
    assert ((reward_err - expected).abs() <= 5 * sd_r + 1e-5).all(), ((reward_err - expected).abs() / sd_r).max()


@pytest.mark.parametrize("loss", ["ma_l1", "ma_vaml"])
@pytest.mark.parametrize("value", ["q1", "soft"])
def test_model_update_changes_model_only(mbpo_ctx, loss, value):
    ctx = mbpo_ctx
    sac = ctx.agent.sac_agent
    agent_before = [snapshot(sac.critic), snapshot(sac.critic_target), snapshot(sac.policy)]
    alpha_before = float(sac.alpha)
    model_before = snapshot(ctx.dynamics_model)
    upd = ValueAwareModelUpdate(ctx, loss, coeff=0.01, value=value, num_samples=2, grad_clip=2.0)
    batch = ctx.replay_buffer.sample(64)
    loss_val, meta = upd(batch, ctx.model_trainer.optimizer)
    assert math.isfinite(loss_val) and meta["grad_norm"] >= 0 and meta["mean_abs_advantage"] > 0
    assert not same(model_before, snapshot(ctx.dynamics_model))
    assert same(agent_before[0], snapshot(sac.critic))
    assert same(agent_before[1], snapshot(sac.critic_target))
    assert same(agent_before[2], snapshot(sac.policy))
    assert float(sac.alpha) == alpha_before
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in sac.critic.parameters())


def test_model_gradient_is_clipped(mbpo_ctx):
    ctx = mbpo_ctx
    upd = ValueAwareModelUpdate(ctx, "ma_l1", coeff=1e6, grad_clip=0.5)
    upd(ctx.replay_buffer.sample(64), ctx.model_trainer.optimizer)
    total = torch.norm(torch.stack([p.grad.norm() for p in ctx.dynamics_model.parameters() if p.grad is not None]))
    assert total.item() <= 0.5 + 1e-4


def test_nonfinite_loss_stops_before_step(mbpo_ctx):
    ctx = mbpo_ctx
    ctx.env_steps = 1234
    with torch.no_grad():
        for p in ctx.agent.sac_agent.critic.parameters():
            p.fill_(float("nan"))
    before = snapshot(ctx.dynamics_model)
    upd = ValueAwareModelUpdate(ctx, "ma_l1", coeff=0.01)
    with pytest.raises(NonFiniteModelLoss, match="env step 1234"):
        upd(ctx.replay_buffer.sample(64), ctx.model_trainer.optimizer)
    assert same(before, snapshot(ctx.dynamics_model))


def test_refit_changes_critic_only(mbpo_ctx):
    ctx = mbpo_ctx
    sac = ctx.agent.sac_agent
    refit = StaleValueRefit(interval=5, num_updates=5, num_starts=50, batch_size=32, seed=0)
    refit.on_train_begin(ctx)
    critic, policy = snapshot(sac.critic), snapshot(sac.policy)
    alpha = float(sac.alpha)
    log_alpha = sac.log_alpha.detach().clone() if hasattr(sac, "log_alpha") else None
    policy_opt = copy.deepcopy(sac.policy_optim.state_dict())
    sac_buf = ctx.sac_buffer.get_all()
    sac_len = len(ctx.sac_buffer)
    rb_rng_state = copy.deepcopy(ctx.replay_buffer.rng.bit_generator.state)
    rb_len = len(ctx.replay_buffer)
    model_gen_state = ctx.torch_generator.get_state().clone()
    # four model steps: nothing; the fifth triggers Algorithm 2
    for _ in range(4):
        refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    refit.on_model_batch(ctx, 0, 0.0, {}, "eval")  # eval batches do not count
    assert refit.refits == 0 and same(critic, snapshot(sac.critic))
    refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 1 and refit.critic_updates == 5 and refit.seconds > 0
    assert 0 < refit.last_buffer_size <= 3 * 70  # starts rounded up to a multiple of 35
    assert not same(critic, snapshot(sac.critic))
    assert same(policy, snapshot(sac.policy))
    assert float(sac.alpha) == alpha
    if log_alpha is not None:
        assert torch.equal(log_alpha, sac.log_alpha.detach())
    assert str(sac.policy_optim.state_dict()) == str(policy_opt)
    assert len(ctx.sac_buffer) == sac_len
    np.testing.assert_array_equal(ctx.sac_buffer.get_all().obs, sac_buf.obs)
    assert len(ctx.replay_buffer) == rb_len
    assert ctx.replay_buffer.rng.bit_generator.state == rb_rng_state
    assert torch.equal(ctx.torch_generator.get_state(), model_gen_state)


def test_naive_ablation_has_no_refit(mbpo_ctx):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    cfg.overrides.value_update_interval = 0
    cbs = plugin.make_callbacks(cfg, mbpo_ctx)
    assert [type(c).__name__ for c in cbs] == ["ValueAwareDiagnostics", "RunRecorder"]
    cfg.overrides.value_update_interval = 5
    assert [type(c).__name__ for c in plugin.make_callbacks(cfg, mbpo_ctx)] == [
        "StaleValueRefit",
        "ValueAwareDiagnostics",
        "RunRecorder",
    ]
    cfg.overrides.model_loss = "mle"
    assert [type(c).__name__ for c in plugin.make_callbacks(cfg, mbpo_ctx)] == ["ValueAwareDiagnostics", "RunRecorder"]


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("va_loss_coeff", 0.0, "overrides.va_loss_coeff"),
        ("va_loss_coeff", -1.0, "overrides.va_loss_coeff"),
        ("va_loss_coeff", float("nan"), "overrides.va_loss_coeff"),
        ("value_update_interval", -1, "overrides.value_update_interval"),
        ("num_value_updates", -2, "overrides.num_value_updates"),
        ("value_refit_batch_size", 0, "overrides.value_refit_batch_size"),
        ("va_value", "q9", "overrides.va_value"),
        ("va_samples", 0, "overrides.va_samples"),
        ("va_grad_clip", -1.0, "overrides.va_grad_clip"),
        ("va_reduction", "max", "overrides.va_reduction"),
    ],
)
def test_invalid_settings_name_the_key(mbpo_ctx, key, value, msg):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    OmegaConf.update(cfg, f"overrides.{key}", value)
    with pytest.raises(ValueError, match=msg.replace(".", r"\.")):
        plugin.validate_config(cfg)


def test_direct_forms_rejected_in_mbpo(mbpo_ctx):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    cfg.overrides.model_loss = "ma_direct_l1"
    with pytest.raises(ValueError, match="whole trajectories"):
        plugin.validate_config(cfg)


def test_squashed_action_matches_policy_sample(mbpo_ctx):
    policy = mbpo_ctx.agent.sac_agent.policy
    s = torch.randn(10, 4)
    torch.manual_seed(0)
    a, logp, _ = policy.sample(s)
    torch.manual_seed(0)
    eps = torch.randn(10, 1)  # what Normal.rsample draws after the same seed
    a2, logp2 = squashed_action(policy, s, eps)
    torch.testing.assert_close(a2, a)
    torch.testing.assert_close(logp2, logp)


@pytest.mark.parametrize("name", ["q1", "soft"])
def test_estimators_share_the_action_draw(mbpo_ctx, name):
    """A perfect model has zero model advantage exactly (common random numbers)."""
    sac = mbpo_ctx.agent.sac_agent
    est = make_estimator(name, sac)
    s2 = torch.randn(16, 4)
    v_true, v_pred = est(s2, s2.unsqueeze(0).expand(3, 16, 4), torch.Generator().manual_seed(0))
    assert v_pred.shape == (3, 16)
    torch.testing.assert_close(v_pred, v_true.expand(3, 16))


def test_estimator_values(mbpo_ctx):
    sac = mbpo_ctx.agent.sac_agent
    s2, sh = torch.randn(10, 4), torch.randn(1, 10, 4)
    eps = torch.randn(10, 1, generator=torch.Generator().manual_seed(5))
    a, logp = squashed_action(sac.policy, s2, eps)
    v_true, v_pred = make_estimator("q1", sac)(s2, sh, torch.Generator().manual_seed(5))
    torch.testing.assert_close(v_true, sac.critic(s2, a)[0].squeeze(-1))
    torch.testing.assert_close(v_pred[0], sac.critic(sh[0], a)[0].squeeze(-1))  # same action on ŝ
    v_true, v_pred = make_estimator("soft", sac)(s2, sh, torch.Generator().manual_seed(5))
    c1, c2 = sac.critic(s2, a)
    torch.testing.assert_close(v_true, (torch.min(c1, c2) - sac.alpha * logp).squeeze(-1))
    ah, logph = squashed_action(sac.policy, sh[0], eps)  # same noise, policy evaluated at ŝ
    c1, c2 = sac.critic(sh[0], ah)
    torch.testing.assert_close(v_pred[0], (torch.min(c1, c2) - sac.alpha * logph).squeeze(-1))
    with pytest.raises(ValueError, match="va_value"):
        make_estimator("v", sac)


def test_sum_reduction_is_batch_size_times_mean(mbpo_ctx):
    """va_reduction=sum (paper's MBPO code) = B × the per-member-mean reduction, term by term."""
    ctx = mbpo_ctx
    batch = ctx.replay_buffer.sample(70)
    vals = {}
    for red in ("sum", "mean"):
        upd = ValueAwareModelUpdate(ctx, "ma_l1", coeff=0.01, grad_clip=None, seed=3, reduction=red)
        opt = torch.optim.SGD(ctx.dynamics_model.parameters(), lr=0.0)  # no parameter change
        _, meta = upd(batch, opt)
        vals[red] = meta
    assert vals["sum"]["va_loss"] == pytest.approx(70 * vals["mean"]["va_loss"], rel=1e-5)
    assert vals["sum"]["reward_loss"] == pytest.approx(70 * vals["mean"]["reward_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="va_reduction"):
        ValueAwareModelUpdate(ctx, "ma_l1", coeff=0.01, reduction="max")
