"""Pendulum (Gymnasium ``Pendulum-v1``) with a known reward for model-based steps.

Observation ``[cos θ, sin θ, θ̇]`` (float32 in Gymnasium). Reward (computed from the state
*before* the step): ``-(θ² + 0.1 θ̇² + 0.001 u²)``, θ normalised to [-π, π),
u = clip(a, ±2). θ is recovered as ``atan2(sin, cos)``; the float32 observation bounds the
error by ~1e-5. Never terminates; episodes are 200 steps (``configs/envs/pendulum.yml``).
"""
import numpy as np
from gymnasium.envs.classic_control import pendulum

from slbo.envs import BaseModelBasedEnv


class PendulumEnv(pendulum.PendulumEnv, BaseModelBasedEnv):
    def mb_step(self, states, actions, next_states):
        th = np.arctan2(states[:, 1], states[:, 0])
        thdot = states[:, 2]
        u = np.clip(actions[:, 0], -self.max_torque, self.max_torque)
        costs = th ** 2 + .1 * thdot ** 2 + .001 * (u ** 2)
        return -costs, np.zeros_like(costs, dtype=bool)
