"""The five gridworld objectives against hand-computed values on a 3-state MDP, plus
properties on random categorical models (paper Eq. 8-10)."""

import math

import pytest
import torch

from vaml_ext.gridworld.env import GridSpec, grid_spec
from vaml_ext.gridworld.objectives import (
    METHODS,
    GridObjectives,
    grid_advantage,
    next_state_values,
    transition_advantage,
)
from vaml_ext.losses import UnknownLossError, make_loss

# ---------------------------------------------------------------------------------------
# A 3-state chain 0 - 1 - 2(goal): d = [2, 1, 0], d0 = 2, T = 10, γ = 0.5.
# Reward r(s, ŝ, t) = 0.25·(d(s) − d(ŝ)) + 1[ŝ = 2]·(1 − 0.045·t).
# Critic V = [0.2, 0.6, 5.0]; V(goal) must be ignored (terminal).
# Model: P(·|0, a=0) = [0.2, 0.5, 0.3], P(·|1, a=0) = [0.1, 0.3, 0.6].
# Real trajectory: (s=0, a=0, s'=1, t=1), (s=1, a=0, s'=2, t=2).
#
# U(0, ŝ, 1) = [0 + 0.5·0.2, 0.25 + 0.5·0.6, 0.5 + 0.955] = [0.1, 0.55, 1.455]
#   E = 0.2·0.1 + 0.5·0.55 + 0.3·1.455 = 0.7315;  A1 = 0.55 − 0.7315 = −0.1815
# U(1, ŝ, 2) = [−0.25 + 0.1, 0 + 0.3, 0.25 + 0.91] = [−0.15, 0.3, 1.16]
#   E = 0.1·(−0.15) + 0.3·0.3 + 0.6·1.16 = 0.771;  A2 = 1.16 − 0.771 = 0.389
# ---------------------------------------------------------------------------------------
GAMMA = 0.5
A1, A2 = -0.1815, 0.389
HAND = {
    "mle": (-math.log(0.5) - math.log(0.6)) / 2,
    "ma_l1": (abs(A1) + abs(A2)) / 2,
    "ma_vaml": (A1**2 + A2**2) / 2,
    "ma_direct_l1": abs(A1 + GAMMA * A2),  # |-0.1815 + 0.1945| = 0.013
    "ma_direct_l2": (A1 + GAMMA * A2) ** 2,
}


def chain_spec() -> GridSpec:
    nxt = torch.tensor([[0, 0, 1, 0], [1, 1, 2, 0], [2, 2, 2, 2]])
    return GridSpec(
        size=0,
        n_states=3,
        start=0,
        goal=2,
        max_steps=10,
        next_state=nxt,
        dist=torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64),
        d0=2.0,
    )


def chain_inputs():
    probs = torch.full((1, 3 * 4, 3), 1.0 / 3, dtype=torch.float64)
    probs[0, 0 * 4 + 0] = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    probs[0, 1 * 4 + 0] = torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)
    logits = probs.log().requires_grad_(True)
    V = torch.tensor([[0.2, 0.6, 5.0]], dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([[0 * 4 + 0, 1 * 4 + 0]])
    batch = {"rows": rows, "s_next": torch.tensor([[1, 2]]), "t": torch.tensor([[1, 2]])}
    traj = {k: v.unsqueeze(1) for k, v in batch.items()}  # one trajectory of 2 steps
    traj["mask"] = torch.ones(1, 1, 2, dtype=torch.bool)
    return logits, V, batch, traj


def test_hand_computed_advantages():
    spec = chain_spec()
    logits, V, batch, _ = chain_inputs()
    probs = torch.softmax(logits, -1)
    h = next_state_values(spec, V, GAMMA)
    adv = grid_advantage(spec, probs, h, batch["rows"], batch["s_next"], batch["t"])
    torch.testing.assert_close(adv, torch.tensor([[A1, A2]], dtype=torch.float64))
    # the same numbers from the explicit U rows of the comment above
    U = torch.tensor([[0.1, 0.55, 1.455], [-0.15, 0.3, 1.16]], dtype=torch.float64)
    rows = probs[0, batch["rows"][0]]
    torch.testing.assert_close(
        transition_advantage(rows, U, batch["s_next"][0]), torch.tensor([A1, A2], dtype=torch.float64)
    )


@pytest.mark.parametrize("method", METHODS)
def test_each_objective_matches_hand_value(method):
    spec = chain_spec()
    logits, V, batch, traj = chain_inputs()
    obj = GridObjectives([method], va_loss_coeff=1.0, gamma=GAMMA)
    loss = obj(spec, torch.log_softmax(logits, -1), V, batch, traj)
    assert loss.item() == pytest.approx(HAND[method], abs=1e-9)
    loss.backward()
    # gradients reach the model only, and only through the rows that were used
    assert V.grad is None
    touched = logits.grad[0].abs().sum(-1) > 0
    assert touched.nonzero().flatten().tolist() == [0, 4]


def test_paper_coefficient_scales_value_aware_losses():
    spec = chain_spec()
    logits, V, batch, traj = chain_inputs()
    for method in ("ma_l1", "ma_direct_l2"):
        loss = GridObjectives([method], gamma=GAMMA)(spec, torch.log_softmax(logits, -1), V, batch, traj)
        assert loss.item() == pytest.approx(0.01 * HAND[method], abs=1e-11)


def test_batched_runs_are_independent_sums():
    """A batch of runs returns the sum of each run's own loss (grad of run i = its loss's grad)."""
    spec = chain_spec()
    logits, V, batch, traj = chain_inputs()
    two = lambda x: torch.cat([x, x], 0)  # noqa: E731
    lp = torch.log_softmax(two(logits.detach()), -1)
    obj = GridObjectives(["ma_direct_l1", "mle"], va_loss_coeff=1.0, gamma=GAMMA)
    loss = obj(spec, lp, two(V.detach()), {k: two(v) for k, v in batch.items()}, {k: two(v) for k, v in traj.items()})
    assert loss.item() == pytest.approx(HAND["ma_direct_l1"] + HAND["mle"], abs=1e-9)


def test_unknown_and_foreign_methods_rejected():
    with pytest.raises(UnknownLossError, match="valid names"):
        GridObjectives(["ma_l3"])
    from vaml_ext.losses.objectives import MAL1Loss
    from vaml_ext.losses.registry import _REGISTRY, register_loss

    if "not_grid_test" not in _REGISTRY:
        register_loss("not_grid_test")(type("NotGridTest", (MAL1Loss,), {}))
    try:
        with pytest.raises(ValueError, match="not a gridworld objective"):
            GridObjectives(["not_grid_test"])
    finally:
        _REGISTRY.pop("not_grid_test", None)


# ----------------------------------------------------------------- random-model properties
def _random_problem(seed, size=8, runs=3, m=6, L=40):
    g = torch.Generator().manual_seed(seed)
    spec = grid_spec(size)
    S = spec.n_states
    logits = 3.0 * torch.randn(runs, S * 4, S, generator=g, dtype=torch.float64)
    V = 2.0 * torch.rand(runs, S, generator=g, dtype=torch.float64)
    # real transitions never start at the (terminal) goal
    rows = torch.randint(0, (S - 1) * 4, (runs, m, L), generator=g)
    s_next = torch.randint(0, S, (runs, m, L), generator=g)
    t = torch.randint(1, spec.max_steps, (runs, m, L), generator=g)
    mask = torch.rand(runs, m, L, generator=g) < 0.8
    return spec, logits, V, rows, s_next, t, mask


@pytest.mark.parametrize("seed", range(5))
def test_factorised_advantage_equals_explicit_sum(seed):
    spec, logits, V, rows, s_next, t, _ = _random_problem(seed, size=5)
    probs = torch.softmax(logits, -1)
    gamma = 0.9
    adv = grid_advantage(spec, probs, next_state_values(spec, V, gamma), rows, s_next, t)
    # explicit U(s, ŝ, t) = r(s, ŝ, t) + γ V(ŝ) 1[ŝ != goal] for every candidate ŝ
    S = spec.n_states
    s = rows // 4
    cand = torch.arange(S).expand(rows.shape + (S,))
    U = spec.reward(s.unsqueeze(-1).expand_as(cand), cand, t.unsqueeze(-1).expand_as(cand)) + gamma * V.gather(
        1, cand.flatten(1)
    ).reshape(cand.shape) * (cand != spec.goal)
    P = probs.gather(1, rows.flatten(1).unsqueeze(-1).expand(-1, -1, S)).reshape(rows.shape + (S,))
    torch.testing.assert_close(adv, transition_advantage(P, U, s_next))


@pytest.mark.parametrize("seed", range(20))
def test_upper_bound_l1_dominates_direct_l1_on_random_models(seed):
    """Triangle inequality (Eq. 9): Σ_traj Σ_t γ^t |A_t| ≥ |Σ_traj Σ_t γ^t A_t| (both / m).

    Eq. 10's ``ma_l1`` is that discounted sum normalised into a distribution (the
    discounted occupancy, i.e. ``mask = γ^t``) -- so ``Z · ma_l1 ≥ ma_direct_l1`` with
    ``Z = (1/m) Σ_traj Σ_t γ^t`` the discount mass; both computed by the registry."""
    spec, logits, V, rows, s_next, t, mask = _random_problem(seed)
    gamma = 0.95
    probs = torch.softmax(logits, -1)
    adv = grid_advantage(spec, probs, next_state_values(spec, V, gamma), rows, s_next, t)
    direct = make_loss("ma_direct_l1")
    bound = make_loss("ma_l1")
    disc = gamma ** torch.arange(rows.shape[-1], dtype=torch.float64) * mask
    for r in range(rows.shape[0]):
        d = direct(advantage=adv[r], gamma=gamma, mask=mask[r])
        Z = disc[r].sum() / rows.shape[1]
        u = Z * bound(advantage=adv[r], mask=disc[r])
        assert u.item() >= d.item() - 1e-12
        assert u.item() > 0
    # with a single trajectory of same-sign advantages the bound is tight
    same_sign = adv[0, :1].abs()
    m1 = torch.ones_like(same_sign, dtype=torch.bool)
    t_disc = gamma ** torch.arange(same_sign.shape[-1], dtype=torch.float64)
    assert (t_disc.sum() * bound(advantage=same_sign, mask=t_disc)).item() == pytest.approx(
        direct(advantage=same_sign, gamma=gamma, mask=m1).item()
    )


def test_vaml_does_not_upper_bound_direct_l2():
    """Paper §4.2 ("Connection to VAML"): L2 has no triangle inequality. A = [1, 1], γ = 1: Σ A² = 2 < (Σ A)² = 4."""
    adv = torch.ones(1, 2, dtype=torch.float64)
    vaml = 2 * make_loss("ma_vaml", coeff=1.0)(advantage=adv)  # Σ_t A_t² (mean × T)
    direct = make_loss("ma_direct_l2", coeff=1.0)(advantage=adv, gamma=1.0)
    assert vaml.item() == pytest.approx(2.0) and direct.item() == pytest.approx(4.0)
    assert vaml < direct


def test_perfect_model_has_zero_value_aware_loss_and_minimal_mle():
    spec = grid_spec(5)
    S = spec.n_states
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, S * 4, (1, 64), generator=g)
    s_next = spec.next_state.flatten()[rows]
    t = torch.randint(1, 50, (1, 64), generator=g)
    onehot = torch.nn.functional.one_hot(spec.next_state.flatten(), S).double().unsqueeze(0)
    V = torch.rand(1, S, generator=g, dtype=torch.float64)
    adv = grid_advantage(spec, onehot, next_state_values(spec, V, 0.99), rows, s_next, t)
    assert adv.abs().max().item() < 1e-12
