"""Gridworld dynamics and reward: walls, deterministic moves, goal bonus, absorption,
time limit, and equality of the minigrid wrapper with the batched tensor version."""

import math

import numpy as np
import pytest
import torch

from vaml_ext.gridworld.env import ACTIONS, BatchedGridworld, CardinalEmptyRoom, grid_spec

N, S_, E, W = (ACTIONS.index(a) for a in ("north", "south", "east", "west"))


@pytest.mark.parametrize("size", [5, 8, 12, 16])
def test_transition_table_is_the_walled_room(size):
    spec = grid_spec(size)
    n = size - 2
    assert spec.n_states == n * n and spec.start == 0 and spec.goal == n * n - 1
    assert spec.max_steps == 4 * size * size  # minigrid's default limit
    for s in range(spec.n_states):
        x, y = s % n, s // n
        if s == spec.goal:
            assert spec.next_state[s].tolist() == [s] * 4  # absorbing
            continue
        expect = {N: (x, max(y - 1, 0)), S_: (x, min(y + 1, n - 1)), E: (min(x + 1, n - 1), y), W: (max(x - 1, 0), y)}
        for a, (x2, y2) in expect.items():
            assert spec.next_state[s, a].item() == y2 * n + x2, (s, ACTIONS[a])


def test_size_12_comes_from_the_size_argument_and_bad_sizes_fail():
    env = CardinalEmptyRoom(12)
    assert env.env.unwrapped.width == 12 and env.n_states == 100
    for bad in (3, 7.5, "big", None):
        with pytest.raises(ValueError, match="grid size"):
            grid_spec(bad)


def test_wrapper_rejects_bad_actions():
    env = CardinalEmptyRoom(5)
    env.reset()
    with pytest.raises(ValueError, match="action"):
        env.step(4)


def test_walls_block_and_give_zero_reward():
    env = CardinalEmptyRoom(8)
    s, _ = env.reset(seed=0)
    for a in (N, W):
        s2, r, term, trunc, _ = env.step(a)
        assert s2 == s and r == 0.0 and not term and not trunc


def test_optimal_path_return_and_goal_bonus():
    size = 8
    env = CardinalEmptyRoom(size)
    env.reset(seed=0)
    T = 4 * size * size
    path = [E] * (size - 3) + [S_] * (size - 3)
    rewards = []
    for i, a in enumerate(path):
        s, r, term, trunc, info = env.step(a)
        rewards.append(r)
        assert term == (i == len(path) - 1) and not trunc
    t_goal = len(path)
    # dense part telescopes to 0.5; bonus = 1 − 0.45·t/T = 0.5 + 0.5·(minigrid reward)
    assert sum(rewards) == pytest.approx(1.5 - 0.45 * t_goal / T)
    assert info["minigrid_reward"] == pytest.approx(1 - 0.9 * t_goal / T)
    d_last = 1.0  # last move enters the goal from an adjacent cell
    bonus = rewards[-1] - 0.5 * d_last / env.d0
    assert bonus == pytest.approx(0.5 + 0.5 * info["minigrid_reward"])
    assert sum(rewards) > 1.0


def test_goal_is_absorbing():
    env = CardinalEmptyRoom(5)
    env.reset(seed=0)
    for a in (E, E, S_, S_):
        s, r, term, *_ = env.step(a)
    assert term and s == env.n_states - 1
    for a in range(4):
        s2, r2, term2, trunc2, _ = env.step(a)
        assert (s2, r2, term2, trunc2) == (s, 0.0, True, False)
    b = BatchedGridworld(grid_spec(5), (4,))
    b.state.fill_(grid_spec(5).goal)
    s2, r, term, _ = b.step(torch.arange(4))
    assert (s2 == grid_spec(5).goal).all() and (r == 0).all()


def test_time_limit_truncates_and_return_stays_below_one():
    size = 5
    env = CardinalEmptyRoom(size)
    env.reset(seed=0)
    ret, steps = 0.0, 0
    moves = [E, S_] + [W, N] * 1000  # move towards the goal once, then wander
    for a in moves:
        _, r, term, trunc, _ = env.step(a)
        ret += r
        steps += 1
        if term or trunc:
            break
    assert trunc and not term and steps == 4 * size * size
    assert ret < 1.0 and ret == pytest.approx(0.0, abs=1e-12)  # back at start: dense sum telescopes to 0


@pytest.mark.parametrize("size", [5, 8])
def test_batched_env_matches_minigrid_wrapper(size):
    spec = grid_spec(size)
    rng = np.random.default_rng(size)
    n_env = 3
    wrappers = [CardinalEmptyRoom(size) for _ in range(n_env)]
    for w in wrappers:
        w.reset(seed=0)
    batched = BatchedGridworld(spec, (n_env,))
    # bias actions towards the goal so episodes end both by goal and (size 5) time limit
    for _ in range(3 * spec.max_steps):
        acts = rng.choice(4, size=n_env, p=[0.2, 0.3, 0.3, 0.2])
        s2, r, term, trunc = batched.step(torch.as_tensor(acts))
        for i, w in enumerate(wrappers):
            ws, wr, wterm, wtrunc, _ = w.step(int(acts[i]))
            assert ws == s2[i].item() and wterm == term[i].item() and wtrunc == trunc[i].item()
            assert wr == pytest.approx(r[i].item(), abs=1e-12)
            if wterm or wtrunc:
                w.reset()
        batched.reset_done(term | trunc)


def test_reward_formula_on_tensors():
    spec = grid_spec(16)
    s = torch.tensor([0, 0, spec.goal - 1])
    s2 = torch.tensor([1, 0, spec.goal])
    t = torch.tensor([1, 5, 100])
    r = spec.reward(s, s2, t)
    d = lambda k: math.hypot(13 - k % 14, 13 - k // 14)  # noqa: E731
    d0 = d(0)
    expect = [0.5 * (d0 - d(1)) / d0, 0.0, 0.5 * (1.0 - 0.0) / d0 + 1 - 0.45 * 100 / 1024]
    torch.testing.assert_close(r, torch.tensor(expect, dtype=torch.float64))
