"""Dyna loop (Algorithm 2), the 5×5 learning test and the steps-to-goal table."""

import numpy as np
import pytest
import torch

from vaml_ext.gridworld.a2c import TabularA2C
from vaml_ext.gridworld.dyna import DynaConfig, RealBuffer, evaluate, run_dyna
from vaml_ext.gridworld.env import grid_spec
from vaml_ext.gridworld.model import TabularCategoricalModel, sample_categorical
from vaml_ext.gridworld.objectives import METHODS, GridObjectives
from vaml_ext.gridworld.steps import first_exceed, markdown_table, steps_to_goal

torch.set_num_threads(1)


@pytest.mark.slow
def test_every_method_solves_5x5_with_fixed_seed():
    """Each objective's Dyna agent reaches return > 1 (the goal) on the 5×5 room within
    3000 env steps, starting from a policy that does not (greedy uniform policy walks
    into the north wall)."""
    res = run_dyna(5, list(METHODS), [0] * len(METHODS), DynaConfig(env_steps=3000, eval_every=100), base_seed=2)
    R = np.array(res.returns)  # [evals, runs]
    assert (R[0] < 1).all()
    firsts = {m: first_exceed(res.steps, R[:, i]) for i, m in enumerate(METHODS)}
    assert all(f is not None for f in firsts.values()), firsts
    # the per-transition objectives also end solved
    for i, m in enumerate(METHODS):
        if m in ("mle", "ma_l1", "ma_vaml"):
            assert R[-1, i] > 1, (m, R[-1, i])


def test_run_is_deterministic_for_fixed_seed():
    cfg = DynaConfig(env_steps=200, eval_every=100, model_updates_per_iter=5, policy_updates_per_iter=3)
    a = run_dyna(5, ["ma_l1", "mle"], [0, 0], cfg, base_seed=3)
    b = run_dyna(5, ["ma_l1", "mle"], [0, 0], cfg, base_seed=3)
    assert a.returns == b.returns and a.steps == [0, 100, 200]


def _rollout_setup(methods):
    spec = grid_spec(5)
    R = len(methods)
    g = torch.Generator().manual_seed(0)
    model = TabularCategoricalModel(R, spec.n_states)
    with torch.no_grad():
        model.logits.normal_(generator=g)
    agent = TabularA2C(R, spec.n_states)
    with torch.no_grad():
        agent.policy_logits.normal_(generator=g)
        agent.V.normal_(generator=g)
    s = torch.randint(0, spec.n_states - 1, (R, 8), generator=g)
    traj = agent.rollout(model, spec, s, torch.zeros_like(s), 8, g)
    return spec, model, agent, traj


def test_value_refit_moves_only_value_of_value_aware_runs():
    """Algorithm 2: the refit updates θ_v only (policy untouched) and only where enabled."""
    methods = ["mle", "ma_l1"]
    spec, model, agent, traj = _rollout_setup(methods)
    pol, V = agent.policy_logits.detach().clone(), agent.V.detach().clone()
    # give the shared A2C optimisers momentum first: the refit must still leave MLE's V alone
    agent.a2c_update(traj)
    pol, V = agent.policy_logits.detach().clone(), agent.V.detach().clone()
    agent.value_refit(traj, GridObjectives(methods).value_aware, n_updates=2)
    assert torch.equal(agent.policy_logits, pol)
    assert torch.equal(agent.V[0], V[0])
    assert not torch.equal(agent.V[1], V[1])


def test_model_update_leaves_value_and_policy_untouched():
    methods = list(METHODS)
    spec, model, agent, _ = _rollout_setup(methods)
    buf = RealBuffer(len(methods), 64)
    env_s = torch.zeros(len(methods), dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    for i in range(64):
        a = torch.randint(0, 4, (len(methods),), generator=g)
        s2 = spec.next_state[env_s, a]
        buf.add(
            model.row_index(env_s, a),
            s2,
            torch.full_like(s2, i % 16 + 1),
            torch.full_like(s2, i % 16 == 15, dtype=torch.bool),
        )
        env_s = torch.where(torch.tensor(i % 16 == 15), torch.zeros_like(s2), s2)
    obj = GridObjectives(methods)
    V, pol, logits = agent.V.detach().clone(), agent.policy_logits.detach().clone(), model.logits.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    loss = obj(spec, model.log_probs(), agent.V, buf.sample(32, g), buf.sample_episodes(4, spec.max_steps, g))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert agent.V.grad is None and agent.policy_logits.grad is None
    assert torch.equal(agent.V, V) and torch.equal(agent.policy_logits, pol)
    assert all(not torch.equal(model.logits[i], logits[i]) for i in range(len(methods)))


def test_episode_windows_are_whole_episodes():
    buf = RealBuffer(1, 10)
    # episodes: [0,1,2] (done at 2), [3..6] (done at 6), [7,8,9] (ongoing)
    for i in range(10):
        buf.add(torch.tensor([i]), torch.tensor([i]), torch.tensor([i]), torch.tensor([i in (2, 6)]))
    out = buf.sample_episodes(30, 5, torch.Generator().manual_seed(0))
    for k in range(30):
        idx = out["rows"][0, k][out["mask"][0, k]].tolist()
        assert idx in ([0, 1, 2], [3, 4, 5, 6], [7, 8, 9])
        assert out["mask"][0, k].tolist() == sorted(out["mask"][0, k].tolist(), reverse=True)  # prefix mask


def test_sample_categorical_frequencies():
    p = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(20000, 4)
    x = sample_categorical(p, torch.Generator().manual_seed(0))
    freq = torch.bincount(x, minlength=4).double() / len(x)
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.0, 0.6, 0.3], dtype=torch.float64), atol=0.015, rtol=0)


def test_evaluate_optimal_policy():
    spec = grid_spec(8)
    agent = TabularA2C(1, spec.n_states)
    with torch.no_grad():  # go east along the top row, then south down the last column
        n = 6
        for s in range(spec.n_states):
            agent.policy_logits[0, s, 2 if s % n < n - 1 else 1] = 10.0
    ret = evaluate(agent, spec, 1, greedy=True)
    assert ret.item() == pytest.approx(1.5 - 0.45 * 10 / spec.max_steps)


def test_dyna_config_validation():
    with pytest.raises(ValueError, match="unknown dyna option"):
        DynaConfig.from_dict({"model_lr": 0.1, "lr": 1})
    with pytest.raises(ValueError, match="model_lr"):
        DynaConfig(model_lr=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        DynaConfig(gamma=1.5)
    with pytest.raises(ValueError, match="env_steps"):
        DynaConfig(env_steps=2.5)


# ----------------------------------------------------------------------------- steps to goal
def test_steps_to_goal_median_and_never():
    rows = []
    for seed, curve in enumerate([[0.1, 1.2, 1.3], [0.1, 0.2, 1.1], [0.0, 0.0, 0.0]]):
        for k, r in enumerate(curve):
            rows.append({"size": 5, "method": "mle", "seed": seed, "env_steps": 100 * k, "return": r})
    t = steps_to_goal(rows)[5]["mle"]
    assert t["per_seed"] == [100, 200, None] and t["median"] == 200 and t["solved"] == 2 and t["budget"] == 200
    rows = [dict(r, method="ma_l1", seed=r["seed"] + 10) for r in rows if r["seed"] == 2]
    t = steps_to_goal(rows)[5]["ma_l1"]
    assert t["median"] == float("inf") and t["solved"] == 0
    md = markdown_table(steps_to_goal(rows))
    assert "| MA Upper Bound L1 (`ma_l1`) | never (0/1) |" in md and "5x5 (budget 200)" in md
