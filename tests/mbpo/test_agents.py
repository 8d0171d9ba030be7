"""Agent adapters (pranz24 ``SAC``, Yarats ``SACAgent``) under the value estimators and refits."""

import math

import pytest
import torch

from tests.mbpo.agent_fixtures import make_yarats, with_agent
from tests.mbpo.conftest import same, snapshot
from vaml_ext.mbpo.agents import Pranz24SAC, UnknownAgentError, YaratsSAC, adapter_for
from vaml_ext.mbpo.model_loss import ValueAwareModelUpdate, value_aware_terms
from vaml_ext.mbpo.refit import StaleValueRefit
from vaml_ext.mbpo.values import make_estimator

KINDS = ["pranz24", "yarats"]


@pytest.fixture(params=KINDS)
def ctx(request, mbpo_ctx):
    return with_agent(mbpo_ctx, request.param)


class LinearCritic(torch.nn.Module):
    """``Q1(s, a) = Q2(s, a) = w·s``: a critic whose value ignores the action."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())

    def forward(self, s, a):
        q = (s @ self.w).unsqueeze(-1) + 0.0 * a.sum(-1, keepdim=True)
        return q, q


def test_adapter_chosen_from_the_class(mbpo_ctx):
    assert isinstance(adapter_for(mbpo_ctx.agent), Pranz24SAC)
    assert isinstance(adapter_for(mbpo_ctx.agent.sac_agent), Pranz24SAC)
    assert isinstance(adapter_for(make_yarats(4, 1)), YaratsSAC)
    with pytest.raises(
        UnknownAgentError,
        match=r"no value-aware adapter for agent class .*object.*known: "
        r"mbrl\.third_party\.pytorch_sac\.agent\.sac\.SACAgent",
    ):
        adapter_for(object())


def test_yarats_squashed_action_matches_the_actor_distribution():
    sac = make_yarats(4, 2)
    ag = adapter_for(sac)
    s = torch.randn(20, 4)
    eps = torch.randn(20, 2)
    a, logp = ag.squashed(s, eps)
    dist = sac.actor(s)
    torch.testing.assert_close(ag.squashed(s, torch.zeros(20, 2))[0], dist.mean)
    x = dist.loc + dist.scale * eps
    torch.testing.assert_close(a, torch.tanh(x))
    # SquashedNormal.log_prob through its cached inverse of the same x
    torch.testing.assert_close(logp, dist.log_prob(dist.transforms[0](x)).sum(-1, keepdim=True), rtol=1e-4, atol=1e-4)
    assert ag.act_dim == 2 and float(ag.alpha()) == pytest.approx(0.1)


@pytest.mark.parametrize("value", ["q1", "q1_indep"])
def test_closed_form_for_a_linear_critic(ctx, value):
    """With Q1 = w·s: A = w·(s' − s − μ_Δ) (k -> large), for both agents and both Q1 estimators."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    sac = ctx.agent.sac_agent
    sac.critic = LinearCritic(w)
    dyn = ctx.dynamics_model
    batch = ctx.replay_buffer.sample(35)
    with torch.no_grad():
        model_in, target = dyn._process_batch(batch)
        mean, logvar = dyn.model.forward(model_in.unsqueeze(0), use_propagation=False)
        k = 4000
        est = make_estimator(value, ctx.agent)
        terms = value_aware_terms(dyn, batch, est, num_samples=k, generator=torch.Generator().manual_seed(0))
    exact = (target[..., :4].unsqueeze(0) - mean[..., :4]) @ w
    sd = torch.sqrt((w**2 * logvar[..., :4].exp()).sum(-1) / k)
    err = (terms["advantage"] - exact).abs()
    assert (err <= 5 * sd + 1e-5).all(), (err / sd).max()


@pytest.mark.parametrize("value", ["q1", "soft"])
def test_shared_draw_is_exactly_zero_at_a_perfect_model(ctx, value):
    est = make_estimator(value, ctx.agent)
    s2 = torch.randn(16, 4)
    v_true, v_pred = est(s2, s2.unsqueeze(0).expand(3, 16, 4), torch.Generator().manual_seed(0))
    assert v_pred.shape == (3, 16)
    torch.testing.assert_close(v_pred, v_true.expand(3, 16))


def test_independent_draws_are_not_zero_at_a_perfect_model(ctx):
    """q1_indep (the authors') has a policy-noise floor: A ≠ 0 although ŝ = s'."""
    est = make_estimator("q1_indep", ctx.agent)
    s2 = torch.randn(64, 4)
    v_true, v_pred = est(s2, s2.unsqueeze(0).expand(2, 64, 4), torch.Generator().manual_seed(0))
    assert (v_pred - v_true).abs().mean() > 1e-4
    assert not torch.allclose(v_pred[0], v_pred[1])  # a fresh draw per model sample


def test_independent_draws_carry_no_gradient_through_the_action(ctx):
    ag = adapter_for(ctx.agent)
    s2 = torch.randn(8, 4)
    sh = torch.randn(1, 8, 4, requires_grad=True)
    _, v_pred = make_estimator("q1_indep", ctx.agent)(s2, sh, torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad(v_pred.sum(), sh)
    g_actor = torch.Generator().manual_seed(3)
    a = ag.sample_action(sh[0].detach(), g_actor)  # the same first draw, at ŝ
    x = sh[0].detach().requires_grad_(True)
    (g_fixed,) = torch.autograd.grad(ag.q1(x, a).sum(), x)
    torch.testing.assert_close(g[0], g_fixed)  # ∂Q1(ŝ, a)/∂ŝ at a fixed action only


@pytest.mark.parametrize("value", ["q1", "q1_indep", "soft"])
def test_gradients_reach_the_model_only(ctx, value):
    ag = adapter_for(ctx.agent)
    before = [snapshot(m) for m in ag.modules()]
    temp = ag.temperature_state()
    model_before = snapshot(ctx.dynamics_model)
    upd = ValueAwareModelUpdate(ctx, "ma_l1", coeff=0.01, value=value, num_samples=2, grad_clip=2.0)
    loss, meta = upd(ctx.replay_buffer.sample(64), ctx.model_trainer.optimizer)
    assert math.isfinite(loss) and meta["mean_abs_advantage"] > 0
    assert not same(model_before, snapshot(ctx.dynamics_model))
    for b, m in zip(before, ag.modules()):
        assert same(b, snapshot(m))
    assert all(torch.equal(a, b) for a, b in zip(temp, ag.temperature_state()))
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in ag.critic.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in ag.actor.parameters())


def test_default_refit_serves_both_agents(ctx):
    ag = adapter_for(ctx.agent)
    refit = StaleValueRefit(interval=1, num_updates=3, num_starts=35, batch_size=32, seed=0)
    refit.on_train_begin(ctx)
    critic, actor, temp = snapshot(ag.critic), snapshot(ag.actor), ag.temperature_state()
    sac_len = len(ctx.sac_buffer)
    refit.on_model_batch(ctx, 0, 0.0, {}, "train")
    assert refit.refits == 1 and refit.critic_updates == 3
    assert not same(critic, snapshot(ag.critic))
    assert same(actor, snapshot(ag.actor))
    assert all(torch.equal(a, b) for a, b in zip(temp, ag.temperature_state()))
    assert len(ctx.sac_buffer) == sac_len  # the separate D'' leaves the agent's buffer alone
