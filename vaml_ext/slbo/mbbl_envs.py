"""The paper's Pendulum and Acrobot: MBBL's classic-control tasks, as the authors ran them.

The paper's SLBO code (GitHub ``nirbhayjm/va_slbo``) maps ``Pendulum`` and ``Acrobot`` to
the Model-Based Baseline (MBBL) benchmark's versions (``slbo/partial_envs.py`` l.20-57 ->
``slbo/envs/bm_envs/gym/pendulum.py``, ``acrobot.py``), which are other tasks than
Gymnasium's ``Pendulum-v1`` swing-up and the port's sparse ``ContinuousAcrobot-v1``:

* **MBBL Pendulum** (``bm_envs/gym/pendulum.py`` ``_step``): the reward, taken from the state
  *before* the step, is ``-(cos θ + 0.1 |sin θ| + 0.1 θ̇² + 0.001 u²)`` with ``u = clip(a, ±2)``.
  θ = 0 is upright, so the reward is highest (+1 per step) hanging still at the bottom:
  holding the pole upright scores -1 per step, damping the swing about +1. Dynamics:
  ``θ̇' = θ̇ + (-3g/(2l) sin(θ + π) + 3u/(m l²)) dt``, ``θ' = θ + θ̇' dt``, then ``θ̇'`` clipped
  to ±8 (θ is never wrapped); g = 10, m = l = 1, dt = 0.05. Reset: θ ~ U(-π, π),
  θ̇ ~ U(-1, 1). Never terminates. Observation ``[cos θ, sin θ, θ̇]``.
* **MBBL Acrobot** (``bm_envs/gym/acrobot.py`` ``_step``): a Box action in [-1, 1]
  discretised to the three torques -1 / 0 / +1 at -0.33 and 0.33; a dense reward
  ``-cos θ1 - cos(θ1 + θ2)`` (the tip height, from the state *before* the step); no
  termination. Dynamics, integration (RK4, dt 0.2, the book's equations), angle wrapping
  and velocity bounds are Gymnasium's ``Acrobot-v1``, which MBBL's class also is (RLPy's).
  Reset: the four state variables ~ U(-0.1, 0.1).

Both have ``mb_step`` (the known reward SLBO's virtual steps use: MBBL's ``cost_np_vec``,
a function of the observation before the step) and the port's resume state (``state``,
``last_u``, generators). :func:`register` adds them to the port's env table as
``MBBLPendulum-v0`` and ``MBBLAcrobot-v0``; ``setting=paper`` selects them
(:mod:`vaml_ext.slbo.settings`). Observations are float64 (``mb_step`` sees exactly the
state the reward used).
"""

from __future__ import annotations

import numpy as np

PENDULUM_ID = "MBBLPendulum-v0"
ACROBOT_ID = "MBBLAcrobot-v0"


def _classes():
    import gymnasium
    from gymnasium import spaces
    from gymnasium.envs.classic_control import acrobot

    from slbo.envs import BaseModelBasedEnv  # the port's (patched tree's) model-based env interface

    class MBBLPendulumEnv(gymnasium.Env, BaseModelBasedEnv):
        """MBBL's Pendulum (va_slbo ``slbo/envs/bm_envs/gym/pendulum.py``)."""

        max_speed = 8.0
        max_torque = 2.0
        dt = 0.05
        g, m, l = 10.0, 1.0, 1.0  # noqa: E741 (MBBL's names)

        def __init__(self):
            high = np.array([1.0, 1.0, self.max_speed])
            self.action_space = spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,), dtype=np.float32)
            self.observation_space = spaces.Box(low=-high, high=high, dtype=np.float64)
            self.state = None
            self.last_u = None

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            high = np.array([np.pi, 1.0])
            self.state = self.np_random.uniform(low=-high, high=high)
            self.last_u = None
            return self._get_obs(), {}

        def step(self, action):
            th, thdot = self.state
            u = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -self.max_torque, self.max_torque))
            cost = np.cos(th) + 0.1 * np.abs(np.sin(th)) + 0.1 * thdot**2 + 0.001 * u**2
            self.last_u = u
            newthdot = (
                thdot + (-3 * self.g / (2 * self.l) * np.sin(th + np.pi) + 3.0 / (self.m * self.l**2) * u) * self.dt
            )
            newth = th + newthdot * self.dt
            newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
            self.state = np.array([newth, newthdot])
            return self._get_obs(), float(-cost), False, False, {}

        def _get_obs(self):
            th, thdot = self.state
            return np.array([np.cos(th), np.sin(th), thdot], dtype=np.float64)

        def mb_step(self, states, actions, next_states):
            """MBBL ``cost_np_vec``: the reward of the observation before the step."""
            u = np.clip(actions[:, 0], -self.max_torque, self.max_torque)
            costs = states[:, 0] + 0.1 * np.abs(states[:, 1]) + 0.1 * states[:, 2] ** 2 + 0.001 * u**2
            return -costs, np.zeros_like(costs, dtype=bool)

    class MBBLAcrobotEnv(acrobot.AcrobotEnv, BaseModelBasedEnv):
        """MBBL's Acrobot (va_slbo ``slbo/envs/bm_envs/gym/acrobot.py``)."""

        #: MBBL's discretisation of the Box action: a < -0.33 -> -1, a < 0.33 -> 0, else +1
        THRESHOLDS = (-0.33, 0.33)

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)
            high = self.observation_space.high.astype(np.float64)
            self.observation_space = spaces.Box(low=-high, high=high, dtype=np.float64)

        def reset(self, *, seed=None, options=None):
            gymnasium.Env.reset(self, seed=seed)
            self.state = self.np_random.uniform(low=-0.1, high=0.1, size=(4,))  # MBBL: float64 (Gymnasium: float32)
            return self._get_ob(), {}

        def _get_ob(self):
            s = self.state
            return np.array([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]], dtype=np.float64)

        def torque_index(self, action) -> int:
            a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
            return 0 if a < self.THRESHOLDS[0] else (1 if a < self.THRESHOLDS[1] else 2)

        def step(self, action):
            s = self.state
            assert s is not None, "Call reset before using MBBLAcrobotEnv."
            reward = -np.cos(s[0]) - np.cos(s[1] + s[0])  # the tip height before the step
            _, _, _, _, info = super().step(self.torque_index(action))  # Gymnasium's dynamics (MBBL's)
            return self._get_ob(), float(reward), False, False, info  # MBBL: never terminates

        def mb_step(self, states, actions, next_states):
            """MBBL ``cost_np_vec``: ``h1 + h2`` of the observation before the step."""
            h1 = states[:, 0]
            h2 = states[:, 0] * states[:, 2] - states[:, 1] * states[:, 3]
            return -(h1 + h2), np.zeros_like(h1, dtype=bool)

    return MBBLPendulumEnv, MBBLAcrobotEnv


def register() -> None:
    """Add the MBBL envs to the port's env table (``slbo.partial_envs.ENVS``); idempotent."""
    from slbo import partial_envs

    if PENDULUM_ID not in partial_envs.ENVS:
        pendulum, acrobot = _classes()
        partial_envs.ENVS[PENDULUM_ID] = pendulum
        partial_envs.ENVS[ACROBOT_ID] = acrobot
