"""Swimmer on Gymnasium MuJoCo v5 (upstream: rllab ``swimmer_env``, SLBO observation).

Observation ``[qpos (5, incl. x, y), qvel (5)]`` (10-d). Reward (v5):
``(x'-x)/dt - 1e-4 Σ a²``; never terminates.
"""
import numpy as np
from gymnasium.envs.mujoco import swimmer_v5

from slbo.envs import BaseModelBasedEnv


class SwimmerEnv(swimmer_v5.SwimmerEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        kwargs.setdefault('exclude_current_positions_from_observation', False)
        assert not kwargs['exclude_current_positions_from_observation']
        super().__init__(**kwargs)

    def mb_step(self, states: np.ndarray, actions: np.ndarray, next_states: np.ndarray):
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        forward_reward = self._forward_reward_weight * (next_states[:, 0] - states[:, 0]) / self.mb_dt()
        reward = forward_reward - ctrl_cost
        return reward, np.zeros_like(reward, dtype=bool)
