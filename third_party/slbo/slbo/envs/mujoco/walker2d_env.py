"""Walker2d on Gymnasium MuJoCo v5 (upstream: rllab ``walker2d_env``, SLBO observation).

Observation: ``[qpos (9, incl. x), clip(qvel, ±10) (9)]`` (18-d,
``exclude_current_positions_from_observation=False``). Reward (v5):
``(x'-x)/dt + healthy · 1 - 1e-3 Σ a²``; termination: z' ∉ (0.8, 2.0) or angle' ∉ (-1, 1).
"""
import numpy as np
from gymnasium.envs.mujoco import walker2d_v5

from slbo.envs import BaseModelBasedEnv


class Walker2DEnv(walker2d_v5.Walker2dEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        kwargs.setdefault('exclude_current_positions_from_observation', False)
        assert not kwargs['exclude_current_positions_from_observation']
        super().__init__(**kwargs)

    def mb_step(self, states, actions, next_states):
        min_z, max_z = self._healthy_z_range
        min_angle, max_angle = self._healthy_angle_range
        z, angle = next_states[:, 1], next_states[:, 2]
        healthy = (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)
        x_velocity = (next_states[:, 0] - states[:, 0]) / self.mb_dt()
        rewards = self._forward_reward_weight * x_velocity + healthy * self._healthy_reward \
            - self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        dones = ~healthy if self._terminate_when_unhealthy else np.zeros_like(healthy)
        return rewards, dones
