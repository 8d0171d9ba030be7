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
        """v5's ``is_healthy`` on a batch: ``min_z < z < max_z``, ``min_angle < angle <
        max_angle`` and every ``s'[2:]`` in ``(min_state, max_state)``. Port (speed): one
        pair of bound vectors over ``s'[1:]`` (the angle's bounds are the tighter of its two
        ranges; strict inequalities, so the result is the same, NaN included)."""
        bounds = self.__dict__.get('_healthy_bounds')
        if bounds is None:
            (min_state, max_state), (min_z, max_z) = self._healthy_state_range, self._healthy_z_range
            min_angle, max_angle = self._healthy_angle_range
            n = self.observation_space.shape[0] - 1
            lo, hi = np.full(n, float(min_state)), np.full(n, float(max_state))
            lo[0], hi[0] = min_z, max_z
            lo[1], hi[1] = max(min_angle, min_state), min(max_angle, max_state)
            bounds = self.__dict__['_healthy_bounds'] = (lo, hi)
        lo, hi = bounds
        s = next_states[:, 1:]
        return ((lo < s) & (s < hi)).all(axis=-1)

    def mb_step(self, states, actions, next_states):
        x_velocity = (next_states[:, 0] - states[:, 0]) / self.mb_dt()
        healthy = self._healthy(next_states)
        reward = self._forward_reward_weight * x_velocity + healthy * self._healthy_reward \
            - self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        done = ~healthy if self._terminate_when_unhealthy else np.zeros_like(healthy)
        return reward, done
