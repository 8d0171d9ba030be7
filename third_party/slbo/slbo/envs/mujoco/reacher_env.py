"""Reacher on Gymnasium MuJoCo v5 (not in upstream SLBO; in the paper's env list via MBBL).

Observation (v5, 10-d): ``[cos q, sin q (2+2), target xy (2), qvel (2), (fingertip - target)_xy (2)]``.
Reward (v5, computed *after* the step): ``-||fingertip - target|| - Σ a²``; the distance is
3-d but both bodies sit at the same height, so it equals the norm of the observed xy
difference of ``s'``. Never terminates; episodes are 50 steps (``configs/envs/reacher.yml``).
"""
import numpy as np
from gymnasium.envs.mujoco import reacher_v5

from slbo.envs import BaseModelBasedEnv


class ReacherEnv(reacher_v5.ReacherEnv, BaseModelBasedEnv):
    def mb_step(self, states: np.ndarray, actions: np.ndarray, next_states: np.ndarray):
        reward_dist = -np.linalg.norm(next_states[:, -2:], axis=-1) * self._reward_dist_weight
        reward_ctrl = -np.square(actions).sum(axis=-1) * self._reward_control_weight
        reward = reward_dist + reward_ctrl
        return reward, np.zeros_like(reward, dtype=bool)
