"""The network (MLP) categorical model: exact expectations, gradient flow, 5×5 learning."""

import numpy as np
import pytest
import torch

from vaml_ext.gridworld.a2c import TabularA2C
from vaml_ext.gridworld.dyna import DynaConfig, DynaTrainer, RealBuffer, run_dyna
from vaml_ext.gridworld.env import CardinalEmptyRoom, grid_spec
from vaml_ext.gridworld.model import MLPCategoricalModel, make_model, state_encoding
from vaml_ext.gridworld.objectives import METHODS, GridObjectives, grid_advantage, next_state_values, row_advantage
from vaml_ext.gridworld.steps import first_exceed

torch.set_num_threads(1)
GAMMA = 0.99


def _random_mlp(size, encoding, runs=2, seed=0):
    spec = grid_spec(size)
    g = torch.Generator().manual_seed(seed)
    model = MLPCategoricalModel(runs, spec.n_states, encoding=encoding, hidden=8, layers=2, generator=g)
    with torch.no_grad():  # the output layer starts at 0 (uniform); give it weights
        model.weights[-1].normal_(generator=g)
        model.biases[-1].normal_(generator=g)
    return spec, model, g


def _explicit_input(room, s, a, encoding):
    """The network input of (s, a) built by hand from the room's cell positions."""
    n = room.inner
    if encoding == "coords":
        x, y = room.state_to_pos(s)
        enc = [2 * (x - 1) / (n - 1) - 1, 2 * (y - 1) / (n - 1) - 1]
    else:
        enc = [1.0 if k == s else 0.0 for k in range(n * n)]
    return torch.tensor(enc + [1.0 if k == a else 0.0 for k in range(4)])


def _explicit_logits(model, run, x):
    h = x
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        h = h @ w[run] + b[run, 0]
        if i < len(model.weights) - 1:
            h = torch.tanh(h)
    return h


@pytest.mark.parametrize("encoding", ["coords", "onehot"])
def test_mlp_expectation_equals_explicit_per_row_sum(encoding):
    """Model advantage of real transitions from the network model (as the objectives compute
    it: batched rows and the full table) = U(s, s', t) − Σ_ŝ P_φ(ŝ|s,a)·U(s, ŝ, t) summed cell
    by cell, with P_φ from a hand-built input and a hand-written forward pass."""
    spec, model, g = _random_mlp(5, encoding)
    room = CardinalEmptyRoom(5)
    V = torch.randn(2, spec.n_states, generator=g)
    s = torch.randint(0, spec.n_states - 1, (2, 6), generator=g)  # never the goal (last cell)
    a = torch.randint(0, 4, (2, 6), generator=g)
    s2 = spec.next_state[s, a]
    t = torch.randint(1, spec.max_steps, (2, 6), generator=g)
    h = next_state_values(spec, V, GAMMA)
    rows = model.row_index(s, a)
    with torch.no_grad():
        adv_rows = row_advantage(spec, torch.softmax(model.row_logits(rows), -1), h, s2, t)
        adv_table = grid_advantage(spec, torch.softmax(model.table_logits(), -1), h, rows, s2, t)
    for r in range(2):
        for k in range(6):
            si, ai, ti = int(s[r, k]), int(a[r, k]), t[r, k]
            with torch.no_grad():
                p = torch.softmax(_explicit_logits(model, r, _explicit_input(room, si, ai, encoding)), -1)

            def U(nxt, r=r, si=si, ti=ti):
                nxt_t = torch.tensor(nxt)
                v = 0.0 if nxt == spec.goal else GAMMA * float(V[r, nxt])
                return float(spec.reward(torch.tensor(si), nxt_t, ti)) + v

            expected = sum(float(p[j]) * U(j) for j in range(spec.n_states))
            want = U(int(s2[r, k])) - expected
            assert adv_rows[r, k].item() == pytest.approx(want, abs=1e-5)
            assert adv_table[r, k].item() == pytest.approx(want, abs=1e-5)
    room.close()


def test_mlp_rows_match_table_and_start_uniform():
    spec = grid_spec(8)
    model = make_model("mlp", 3, spec.n_states, "coords", 16, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.log_probs(), torch.full_like(model.log_probs(), -np.log(spec.n_states)))
    spec, model, g = _random_mlp(8, "coords", runs=3)
    s = torch.randint(0, spec.n_states, (3, 5), generator=g)
    a = torch.randint(0, 4, (3, 5), generator=g)
    rows = model.row_index(s, a)
    full = model.table_logits()
    torch.testing.assert_close(
        model.rows(s, a), torch.gather(full, 1, rows.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    )
    # rollouts sample from the frozen table: the same draws as sampling the rows directly
    frozen = model.frozen()
    s = torch.randint(0, spec.n_states, (3, 400), generator=g)
    a = torch.randint(0, 4, (3, 400), generator=g)
    draws = frozen.sample(s, a, torch.Generator().manual_seed(5))
    assert torch.equal(draws, model.sample(s, a, torch.Generator().manual_seed(5)))
    enc = state_encoding(spec.n_states, "coords")
    assert enc.min() == -1 and enc.max() == 1 and enc.shape == (spec.n_states, 2)
    with pytest.raises(ValueError, match="encoding"):
        state_encoding(9, "polar")
    with pytest.raises(ValueError, match="model='gp' is invalid: expected one of table, mlp"):
        make_model("gp", 1, 9)
    with pytest.raises(ValueError, match="dyna.model"):
        DynaConfig(model="gp")
    with pytest.raises(ValueError, match="dyna.encoding"):
        DynaConfig(encoding="polar")


def test_objectives_same_loss_from_model_or_its_table():
    """GridObjectives evaluates a network model on the rows it needs; the loss equals the
    one computed from the model's full table of logits (every method at once)."""
    methods = list(METHODS)
    spec, model, g = _random_mlp(5, "coords", runs=len(methods))
    buf, V = _filled_buffer(spec, len(methods), g)
    obj = GridObjectives(methods)
    batch, traj = buf.sample(32, g), buf.sample_episodes(4, spec.max_steps, g)
    a = obj(spec, model, V, batch, traj)
    b = obj(spec, model.table_logits(), V, batch, traj)
    torch.testing.assert_close(a, b)


def _filled_buffer(spec, R, g):
    buf = RealBuffer(R, 64)
    env_s = torch.zeros(R, dtype=torch.long)
    for i in range(64):
        a = torch.randint(0, 4, (R,), generator=g)
        s2 = spec.next_state[env_s, a]
        done = torch.full_like(s2, i % 16 == 15, dtype=torch.bool)
        buf.add(env_s * 4 + a, s2, torch.full_like(s2, i % 16 + 1), done)
        env_s = torch.where(done, torch.zeros_like(s2), s2)
    return buf, torch.randn(R, spec.n_states, generator=g)


def test_mlp_gradients_reach_the_model_only():
    """One model step of every objective: every run's network weights (all layers) get a
    gradient and change; the critic and the policy get no gradient and stay put."""
    methods = list(METHODS)
    spec, model, g = _random_mlp(5, "coords", runs=len(methods))
    buf, _ = _filled_buffer(spec, len(methods), g)
    agent = TabularA2C(len(methods), spec.n_states)
    with torch.no_grad():
        agent.V.normal_(generator=g)
        agent.policy_logits.normal_(generator=g)
    V, pol = agent.V.detach().clone(), agent.policy_logits.detach().clone()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = GridObjectives(methods)(spec, model, agent.V, buf.sample(32, g), buf.sample_episodes(4, spec.max_steps, g))
    opt.zero_grad()
    loss.backward()
    for p in model.parameters():
        assert p.grad is not None and all(p.grad[i].abs().sum() > 0 for i in range(len(methods)))
    opt.step()
    assert agent.V.grad is None and agent.policy_logits.grad is None
    assert torch.equal(agent.V, V) and torch.equal(agent.policy_logits, pol)
    for p, q in zip(model.parameters(), before):
        assert all(not torch.equal(p[i], q[i]) for i in range(len(methods)))


def test_mlp_5x5_learning():
    """The Dyna loop with the network model (Figure 1's mlp settings: 2×16 tanh, coords,
    Adam 0.01) on the 5×5 room, base seed 1, four MLE and four MA-L1 runs, 1500 env steps
    (~3 s).

    Tolerances, from base seeds 0-3 (two MLE runs each, in batches of 6) and from base seeds
    1-2 in this batch: MLE's greedy policy first returned > 1 after 100-600 env steps in every
    run, so the test allows 1000 for each; its network then puts > 0.99 on the true next cell
    of the visited rows (> 0.9 asserted). MA-L1 with the network reaches the goal in only some
    runs, so for it the test checks what its objective optimises: the mean |model advantage| of
    its real transitions under the final critic, as a fraction of the untrained (uniform)
    model's. That fraction varies widely from run to run -- 0.40-0.88 over these 8 runs (Intel
    Xeon), 0.54 and 0.61 on an AMD EPYC, and one run of an earlier 2-run layout scored 0.91 on
    the Xeon -- so a single run cannot carry a bound; the mean over the four runs (0.59 and 0.62
    at base seeds 1 and 2; seed sd ~0.17, so ~0.09 for a mean of four) is asserted below 0.8,
    about two of its sds above what was measured. Its network puts only ~0.3-0.5 on the true
    next cell: value-aware fitting leaves the rest of the model loose."""
    methods = ["mle", "ma_l1"] * 4
    cfg = DynaConfig(env_steps=1500, eval_every=100, model="mlp", encoding="coords", mlp_hidden=16, model_lr=0.01)
    res = run_dyna(5, methods, [0, 0, 1, 1, 2, 2, 3, 3], cfg, base_seed=1, keep_state=True)
    R = np.array(res.returns)
    assert (R[0] < 1).all()
    mle, ma = [i for i, m in enumerate(methods) if m == "mle"], [i for i, m in enumerate(methods) if m == "ma_l1"]
    firsts = [first_exceed(res.steps, R[:, i]) for i in mle]
    assert all(f is not None and f <= 1000 for f in firsts), firsts
    st = res.state
    spec, buf, model = st["spec"], st["buffer"], st["model"]
    rows, s2, t = buf.rows[:, : buf.size], buf.s_next[:, : buf.size], buf.t[:, : buf.size]
    with torch.no_grad():
        logp = torch.log_softmax(model.row_logits(rows), -1)
        p_true = logp.gather(-1, s2.unsqueeze(-1)).squeeze(-1).exp().mean(1)
        h = next_state_values(spec, st["agent"].V, GAMMA)
        adv = row_advantage(spec, logp.exp(), h, s2, t).abs().mean(1)
        uniform = torch.full_like(logp, 1.0 / spec.n_states)
        adv0 = row_advantage(spec, uniform, h, s2, t).abs().mean(1)
    assert (p_true[mle] > 0.9).all(), p_true
    frac = adv[ma] / adv0[ma]
    assert frac.mean() < 0.8, (frac, adv, adv0)


def test_trainer_builds_the_configured_model():
    tr = DynaTrainer(5, ["mle"], DynaConfig(env_steps=100, model="mlp", encoding="onehot", mlp_hidden=4))
    assert isinstance(tr.model, MLPCategoricalModel) and tr.model.inputs.shape == (9 * 4, 9 + 4)
    tr.train_iteration()
    state = tr.state_dict()
    tr2 = DynaTrainer(5, ["mle"], DynaConfig(env_steps=100, model="mlp", encoding="onehot", mlp_hidden=4))
    tr2.load_state_dict(state)
    for p, q in zip(tr.model.parameters(), tr2.model.parameters()):
        assert torch.equal(p, q)
