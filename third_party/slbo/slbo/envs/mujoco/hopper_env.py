"""Hopper on Gymnasium MuJoCo v5 (upstream: rllab ``hopper_env`` with SLBO's observation).

Observation: v5's with ``exclude_current_positions_from_observation=False`` --
``[qpos (6: x, z, angle, 3 joints), clip(qvel, ±10) (6)]`` (12-d), so the forward reward
``(x' - x) / dt`` is computable from ``(s, s')``. Reward (v5): ``w_fwd (x'-x)/dt +
healthy · 1 - 1e-3 Σ a²``; termination: unhealthy (z' ≤ 0.7, |angle'| ≥ 0.2, or any of
``s'[2:]`` outside (-100, 100)). Known gap: v5 checks the *unclipped* qvel against ±100
while the observation clips it to ±10, so a |qvel| > 100 termination cannot be seen
(never happens in ``verify()``).
"""
import numpy as np
from gymnasium.envs.mujoco import hopper_v5

from slbo.envs import BaseModelBasedEnv


class HopperEnv(hopper_v5.HopperEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        kwargs.setdefault('exclude_current_positions_from_observation', False)
        assert not kwargs['exclude_current_positions_from_observation']
        super().__init__(**kwargs)

    def _healthy(self, next_states):
        min_state, max_state = self._healthy_state_range
        min_z, max_z = self._healthy_z_range
        min_angle, max_angle = self._healthy_angle_range
        healthy_state = np.all((min_state < next_states[:, 2:]) & (next_states[:, 2:] < max_state), axis=-1)
        z, angle = next_states[:, 1], next_states[:, 2]
        return healthy_state & (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)

    def mb_step(self, states, actions, next_states):
        x_velocity = (next_states[:, 0] - states[:, 0]) / self.dt
        healthy = self._healthy(next_states)
        reward = self._forward_reward_weight * x_velocity + healthy * self._healthy_reward \
            - self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        done = ~healthy if self._terminate_when_unhealthy else np.zeros_like(healthy)
        return reward, done
