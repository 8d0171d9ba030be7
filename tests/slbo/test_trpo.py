"""TRPO: conjugate gradient, KL-constrained step, surrogate improvement, value-only vf fit."""

import numpy as np
import pytest
import torch

from slbo.algos.TRPO import TRPO, conj_grad
from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
from slbo.utils.dataset import Dataset
from slbo.utils.normalizer import GaussianNormalizer
from slbo.utils.torch_utils import get_flat
from slbo.v_function.mlp_v_function import MLPVFunction


def test_conj_grad_solves_spd_system():
    rng = np.random.RandomState(0)
    m = rng.randn(6, 6)
    a = m @ m.T + 6 * np.eye(6)
    b = rng.randn(6)
    x = conj_grad(lambda v: a @ v, b, n_iters=10)
    np.testing.assert_allclose(a @ x, b, atol=1e-6)


def _toy(max_kl=0.01, n=2000, dim_state=3, dim_action=2):
    normalizer = GaussianNormalizer("state", [dim_state])
    policy = GaussianMLPPolicy(dim_state, dim_action, [32, 32], normalizer, init_std=1.0)
    vfn = MLPVFunction(dim_state, [64, 64], normalizer)
    algo = TRPO(
        dim_state,
        dim_action,
        policy,
        vfn,
        max_kl=max_kl,
        n_cg_iters=10,
        ent_coef=0.0,
        cg_damping=0.1,
        vf_lr=1e-3,
        n_vf_iters=5,
    )
    states = np.random.randn(n, dim_state)
    actions = policy.get_actions(states)
    # reward actions close to a state-dependent target: a* = tanh(s[:, :2])
    target = np.tanh(states[:, :dim_action])
    rewards = -((actions - target) ** 2).sum(1)
    values = np.zeros(n)
    advantages = rewards - rewards.mean()
    dtype = [("state", "f8", (dim_state,)), ("action", "f8", (dim_action,))]
    samples = Dataset.fromarrays([states, actions], dtype=dtype)
    return algo, policy, vfn, samples, advantages, values


def _surrogate_and_kl(algo, samples, advantages):
    adv = (advantages - advantages.mean()) / max(advantages.std(), 1e-8)
    s = torch.as_tensor(samples.state, dtype=torch.float32)
    a = torch.as_tensor(samples.action, dtype=torch.float32)
    loss, kl = algo.get_loss(s, a, torch.as_tensor(adv, dtype=torch.float32), 0.0)
    return loss, kl


@pytest.mark.parametrize("max_kl", [0.01, 0.05])
def test_trpo_step_respects_kl_and_improves_surrogate(max_kl):
    algo, policy, vfn, samples, advantages, values = _toy(max_kl=max_kl)
    algo.sync_old()
    before, kl0 = _surrogate_and_kl(algo, samples, advantages)
    assert kl0 == pytest.approx(0.0, abs=1e-7)
    theta0 = get_flat(policy.parameters())
    algo.train(0.0, samples, advantages, values)
    # old_policy still holds the pre-step parameters: surrogate ratio and KL are vs. it
    after, kl = _surrogate_and_kl(algo, samples, advantages)
    assert not np.allclose(get_flat(policy.parameters()), theta0), "policy did not move"
    assert kl <= 1.5 * max_kl
    assert kl > 0.05 * max_kl  # a real step, not a vanishing one
    assert after > before


def test_trpo_value_fit_reduces_vf_loss():
    algo, policy, vfn, samples, advantages, values = _toy()
    returns = np.sin(samples.state[:, 0]) * 3
    ds = Dataset.fromarrays([samples.state, returns], dtype=[("state", ("f8", 3)), ("return_", "f8")])
    with torch.no_grad():
        l0 = float(algo.get_vf_loss(ds.state, ds.return_))
    l1 = algo.train_vf(ds)
    assert l1 < 0.5 * l0


def test_policy_init_matches_upstream():
    normalizer = GaussianNormalizer("state", [5])
    policy = GaussianMLPPolicy(5, 3, [32, 32], normalizer, init_std=1.0)
    w_out = policy.net[-1].weight.detach()
    np.testing.assert_allclose(w_out.norm(dim=1).numpy(), 0.01, rtol=1e-5)  # normc(0.01)
    np.testing.assert_allclose(policy.net[0].weight.detach().norm(dim=1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(policy.op_log_std.detach().numpy(), 0.0)
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in policy.net if hasattr(layer, "bias"))
