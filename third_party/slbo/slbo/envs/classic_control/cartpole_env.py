"""Continuous-action CartPole: Gymnasium ``CartPole-v1`` dynamics with force ``10 · clip(a, -1, 1)``.

Same Euler dynamics, thresholds (|x| > 2.4, |θ| > 12°) and reward (+1 every step,
including the terminal one). Observations float64 (so termination is a function of the
observation exactly). Episodes: 500 steps.
"""
import math

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import cartpole

from slbo.envs import BaseModelBasedEnv


class ContinuousCartPoleEnv(cartpole.CartPoleEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)
        high = self.observation_space.high.astype(np.float64)
        self.observation_space = spaces.Box(low=-high, high=high, dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return np.array(self.state, dtype=np.float64), info

    def step(self, action):
        assert self.state is not None, "Call reset before using step method."
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag * float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        temp = (force + self.polemass_length * theta_dot ** 2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta ** 2 / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.kinematics_integrator == "euler":
            x = x + self.tau * x_dot
            x_dot = x_dot + self.tau * xacc
            theta = theta + self.tau * theta_dot
            theta_dot = theta_dot + self.tau * thetaacc
        else:  # semi-implicit euler
            x_dot = x_dot + self.tau * xacc
            x = x + self.tau * x_dot
            theta_dot = theta_dot + self.tau * thetaacc
            theta = theta + self.tau * theta_dot
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        terminated = bool(x < -self.x_threshold or x > self.x_threshold
                          or theta < -self.theta_threshold_radians or theta > self.theta_threshold_radians)
        return self.state.copy(), 1.0, terminated, False, {}

    def mb_step(self, states, actions, next_states):
        x, theta = next_states[:, 0], next_states[:, 2]
        dones = (x < -self.x_threshold) | (x > self.x_threshold) \
            | (theta < -self.theta_threshold_radians) | (theta > self.theta_threshold_radians)
        return np.ones(len(next_states)), dones
