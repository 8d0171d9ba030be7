"""The paper's gridworld (§5.1): MiniGrid's empty room with cardinal moves and a shaped reward.

Setting (paper §5.1, Figure 1): an N×N ``minigrid`` ``EmptyEnv`` room (N = 5, 8, 12, 16;
walls on the edge cells, so the agent moves in the (N-2)×(N-2) interior), the agent
spawns in the top-left interior cell, the goal is the bottom-right interior cell and is
absorbing, the four actions are cardinal moves (North, South, East, West), transitions
are deterministic and the state is the agent's cell (its interior index
``s = (y-1)·(N-2) + (x-1)``).

Reward (exact; ``d(s)`` is the Euclidean distance from cell ``s`` to the goal cell,
``d0 = d(start)``, ``t`` the number of steps taken *including* this one, ``T`` the
episode limit = minigrid's ``max_steps = 4·N²``)::

    r(s, s', t) = 0.5 · (d(s) − d(s')) / d0                  # dense: progress towards the goal
                + 1[s' = goal] · (1 − 0.45 · t / T)         # decaying goal bonus

The goal bonus is ``0.5 + 0.5 · R_minigrid`` with minigrid's own success reward
``R_minigrid = 1 − 0.9 · t / T``. The dense term is a difference of potentials, so an
episode's dense return telescopes to ``0.5 · (1 − d(s_T)/d0)``: it is ``< 0.5`` unless the
goal is reached and cannot be farmed by walking back and forth. Hence the undiscounted
return is ``1.5 − 0.45 · t_goal / T ∈ (1.05, 1.5]`` when the goal is reached at step
``t_goal`` and ``< 0.5`` otherwise -- *a return above 1 means the goal was reached*, and
higher returns mean fewer steps.

Two implementations of the same MDP:

* :class:`CardinalEmptyRoom` -- a Gymnasium wrapper around minigrid's ``EmptyEnv``
  (one environment, the reference semantics, used by the tests);
* :class:`GridSpec` / :class:`BatchedGridworld` -- the transition table *read off*
  ``EmptyEnv`` by placing the agent in every cell and stepping it once per action,
  stepped as batched tensors so many runs × environments advance in one call. The tests
  check that both give identical trajectories and rewards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

#: Action names, in action-index order. Each maps to minigrid's direction index
#: (0 = +x/east, 1 = +y/south, 2 = −x/west, 3 = −y/north).
ACTIONS = ("north", "south", "east", "west")
_MINIGRID_DIR = (3, 1, 0, 2)
NUM_ACTIONS = 4

DENSE_SCALE = 0.5  # the dense return from start to goal
BONUS_DECAY = 0.45  # goal bonus = 1 - BONUS_DECAY * t / T

SUPPORTED_SIZES = (5, 8, 12, 16)


def _check_size(size) -> int:
    try:
        ok = int(size) == size and int(size) >= 4
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"grid size must be an integer >= 4 (the paper uses {SUPPORTED_SIZES}), got {size!r}")
    return int(size)


def make_minigrid_room(size: int, max_steps: int | None = None):
    """minigrid's ``EmptyEnv`` of ``size`` (walls included), agent top-left facing east."""
    from minigrid.envs import EmptyEnv

    return EmptyEnv(size=_check_size(size), agent_start_pos=(1, 1), agent_start_dir=0, max_steps=max_steps)


def goal_bonus(t, max_steps: int):
    """Decaying goal bonus ``1 − 0.45·t/T`` (= ``0.5 + 0.5·(1 − 0.9·t/T)``, minigrid's reward rescaled)."""
    return 1.0 - BONUS_DECAY * t / max_steps


class CardinalEmptyRoom(gym.Wrapper):
    """minigrid ``EmptyEnv`` with cardinal actions, cell-index states and the paper's reward.

    ``step(a)`` turns the minigrid agent to face direction ``a`` and calls minigrid's own
    ``forward`` action, so walls and the goal behave exactly as in minigrid (one minigrid
    step per action; ``step_count`` and the ``4·N²`` time limit are minigrid's). The goal
    is absorbing: once reached, further steps stay there with reward 0 and
    ``terminated=True``. See the module docstring for the exact reward.
    """

    def __init__(self, size: int = 8, max_steps: int | None = None):
        super().__init__(make_minigrid_room(size, max_steps))
        self.size = int(size)
        self.inner = self.size - 2
        self.n_states = self.inner * self.inner
        self.goal_pos = (self.size - 2, self.size - 2)
        self.start_pos = (1, 1)
        self.max_steps = int(self.env.unwrapped.max_steps)  # type: ignore[attr-defined]
        self.d0 = self._dist(self.start_pos)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = gym.spaces.Discrete(self.n_states)
        self._at_goal = False

    def _dist(self, pos) -> float:
        return math.hypot(pos[0] - self.goal_pos[0], pos[1] - self.goal_pos[1])

    def pos_to_state(self, pos) -> int:
        x, y = int(pos[0]), int(pos[1])
        if not (1 <= x <= self.inner and 1 <= y <= self.inner):
            raise ValueError(f"position {pos} is not an interior cell of a {self.size}x{self.size} room")
        return (y - 1) * self.inner + (x - 1)

    def state_to_pos(self, s: int) -> tuple[int, int]:
        return (int(s) % self.inner + 1, int(s) // self.inner + 1)

    def reset(self, *, seed=None, options=None):
        self.env.reset(seed=seed, options=options)
        self._at_goal = False
        return self.pos_to_state(self.env.unwrapped.agent_pos), {}

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action must be in 0..3 ({', '.join(ACTIONS)}), got {action!r}")
        base = self.env.unwrapped
        pos = tuple(int(v) for v in base.agent_pos)
        if self._at_goal:  # absorbing goal
            return self.pos_to_state(pos), 0.0, True, False, {"minigrid_reward": 0.0}
        base.agent_dir = _MINIGRID_DIR[int(action)]
        _, mg_reward, terminated, truncated, info = self.env.step(base.actions.forward)
        new_pos = tuple(int(v) for v in base.agent_pos)
        reached = new_pos == self.goal_pos
        assert reached == bool(terminated), "minigrid terminates exactly at the goal"
        reward = DENSE_SCALE * (self._dist(pos) - self._dist(new_pos)) / self.d0
        if reached:
            reward += goal_bonus(base.step_count, self.max_steps)
            self._at_goal = True
        info = dict(info, minigrid_reward=float(mg_reward))
        return self.pos_to_state(new_pos), float(reward), bool(terminated), bool(truncated and not terminated), info


@dataclass
class GridSpec:
    """Tabular description of the gridworld, read off minigrid (see :func:`grid_spec`).

    ``next_state[s, a]`` is minigrid's deterministic successor (goal row absorbing),
    ``dist[s]`` the Euclidean distance to the goal.
    """

    size: int
    n_states: int
    start: int
    goal: int
    max_steps: int
    next_state: torch.Tensor  # [S, A] long
    dist: torch.Tensor  # [S] float64
    d0: float

    def reward(self, s: torch.Tensor, s2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact reward ``r(s, s', t)`` of the module docstring, elementwise on tensors."""
        dense = DENSE_SCALE * (self.dist[s] - self.dist[s2]) / self.d0
        bonus = (s2 == self.goal).to(dense.dtype) * goal_bonus(t.to(dense.dtype), self.max_steps)
        return dense + bonus * (s != self.goal).to(dense.dtype)

    def next_state_potential(self) -> torch.Tensor:
        """``−0.5·d(ŝ)/d0`` per next state: the ŝ-dependent, time-free part of the dense reward."""
        return -DENSE_SCALE * self.dist / self.d0


_SPEC_CACHE: dict = {}


def grid_spec(size: int, max_steps: int | None = None) -> GridSpec:
    """Build (and cache) the :class:`GridSpec` of a room by stepping minigrid's ``EmptyEnv``.

    For every interior cell and action, the minigrid agent is placed in the cell and moved
    one step with :class:`CardinalEmptyRoom`'s action mapping; the resulting cell is the
    table entry. So the tensor environment inherits minigrid's walls and goal.
    """
    size = _check_size(size)
    key = (size, max_steps)
    if key in _SPEC_CACHE:
        return _SPEC_CACHE[key]
    env = CardinalEmptyRoom(size, max_steps)
    env.reset(seed=0)
    base: Any = env.env.unwrapped  # minigrid's MiniGridEnv
    from minigrid.core.world_object import Goal

    assert isinstance(base.grid.get(*env.goal_pos), Goal), "minigrid put the goal elsewhere"
    S = env.n_states
    nxt = np.zeros((S, NUM_ACTIONS), dtype=np.int64)
    goal = env.pos_to_state(env.goal_pos)
    for s in range(S):
        for a in range(NUM_ACTIONS):
            if s == goal:
                nxt[s, a] = goal
                continue
            base.agent_pos = env.state_to_pos(s)
            base.step_count = 0
            env._at_goal = False
            s2, *_ = env.step(a)
            nxt[s, a] = s2
    dist = np.array([env._dist(env.state_to_pos(s)) for s in range(S)], dtype=np.float64)
    spec = GridSpec(
        size=size,
        n_states=S,
        start=env.pos_to_state(env.start_pos),
        goal=goal,
        max_steps=env.max_steps,
        next_state=torch.from_numpy(nxt),
        dist=torch.from_numpy(dist),
        d0=float(env.d0),
    )
    env.close()
    _SPEC_CACHE[key] = spec
    return spec


class BatchedGridworld:
    """Many copies of the gridworld stepped at once as tensors (any batch shape).

    ``step`` returns ``(s2, r, terminated, truncated)`` and does *not* reset; use
    :meth:`reset_done` to restart finished environments at the start cell. Stepping a
    state that is already at the goal keeps it there with reward 0 (absorption).
    """

    def __init__(self, spec: GridSpec, shape: tuple[int, ...], dtype=torch.float64):
        self.spec = spec
        self.dtype = dtype
        self.state = torch.full(shape, spec.start, dtype=torch.long)
        self.t = torch.zeros(shape, dtype=torch.long)
        self._dist = spec.dist.to(dtype)

    def reset(self) -> torch.Tensor:
        self.state.fill_(self.spec.start)
        self.t.zero_()
        return self.state

    def step(self, action: torch.Tensor):
        spec = self.spec
        s = self.state
        s2 = spec.next_state[s, action]
        t = self.t + 1
        r = spec.reward(s, s2, t).to(self.dtype)
        term = s2 == spec.goal
        trunc = (t >= spec.max_steps) & ~term
        self.state = s2
        self.t = t
        return s2, r, term, trunc

    def reset_done(self, done: torch.Tensor) -> None:
        self.state = torch.where(done, torch.full_like(self.state, self.spec.start), self.state)
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
