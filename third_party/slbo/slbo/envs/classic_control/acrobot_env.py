"""Continuous-action Acrobot: Gymnasium ``Acrobot-v1`` dynamics with a torque in [-1, 1].

Gymnasium's Acrobot is discrete (torque ∈ {-1, 0, 1}); the paper's SLBO runs need a Box
action. Same RK4 dynamics, wrapping/bounding, termination (``-cos θ1 - cos(θ1+θ2) > 1``)
and reward (-1 per step, 0 on the terminal step); the torque is ``clip(a, -1, 1)``.
Observations are returned in float64 (Gymnasium casts to float32) so ``mb_step`` sees
the state the termination test used. Episodes: 500 steps.
"""
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import acrobot

from slbo.envs import BaseModelBasedEnv


class ContinuousAcrobotEnv(acrobot.AcrobotEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)
        high = self.observation_space.high.astype(np.float64)
        self.observation_space = spaces.Box(low=-high, high=high, dtype=np.float64)

    def _get_ob(self):
        s = self.state
        return np.array([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]], dtype=np.float64)

    def step(self, a):
        s = self.state
        assert s is not None, "Call reset before using AcrobotEnv object."
        torque = float(np.clip(np.asarray(a, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        if self.torque_noise_max > 0:
            torque += self.np_random.uniform(-self.torque_noise_max, self.torque_noise_max)
        s_augmented = np.append(s, torque)
        ns = acrobot.rk4(self._dsdt, s_augmented, [0, self.dt])
        ns[0] = acrobot.wrap(ns[0], -np.pi, np.pi)
        ns[1] = acrobot.wrap(ns[1], -np.pi, np.pi)
        ns[2] = acrobot.bound(ns[2], -self.MAX_VEL_1, self.MAX_VEL_1)
        ns[3] = acrobot.bound(ns[3], -self.MAX_VEL_2, self.MAX_VEL_2)
        self.state = ns
        terminated = self._terminal()
        reward = -1.0 if not terminated else 0.0
        return self._get_ob(), reward, terminated, False, {}

    def mb_step(self, states, actions, next_states):
        c1, s1, c2, s2 = next_states[:, 0], next_states[:, 1], next_states[:, 2], next_states[:, 3]
        height = -c1 - (c1 * c2 - s1 * s2)  # -cos θ1 - cos(θ1 + θ2)
        dones = height > 1.0
        return np.where(dones, 0.0, -1.0), dones
