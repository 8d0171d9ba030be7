"""Ant on Gymnasium MuJoCo v5 (upstream: rllab ``ant_env``, SLBO observation).

Observation: v5's ``[qpos (15, incl. x, y), qvel (14), clip(cfrc_ext[1:], ±1) (78)]`` plus,
as upstream's ``get_body_com("torso")``, the torso body position ``xpos`` (3) -- 110-d.
v5's forward reward differences the torso *xpos*, which after ``mj_step`` lags ``qpos`` by
one physics sub-step, so it is not a function of qpos; appending xpos makes it exact.
Reward (v5): ``(xpos'_x - xpos_x)/dt + healthy · 1 - 0.5 Σ a² - 5e-4 Σ clip(cfrc_ext)²``
(world body's cfrc_ext is 0); termination: z' ∉ [0.2, 1.0] or non-finite state.
"""
import numpy as np
from gymnasium.envs.mujoco import ant_v5

from slbo.envs import BaseModelBasedEnv


class AntEnv(ant_v5.AntEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        kwargs.setdefault('exclude_current_positions_from_observation', False)
        assert not kwargs['exclude_current_positions_from_observation']
        self._slbo_ready = False
        super().__init__(**kwargs)
        self._slbo_ready = True
        self._n_cfrc = (self.model.nbody - 1) * 6 if self._include_cfrc_ext_in_observation else 0
        from gymnasium.spaces import Box
        dim = self.data.qpos.size + self.data.qvel.size + self._n_cfrc + 3
        self.observation_space = Box(-np.inf, np.inf, shape=(dim,), dtype=np.float64)

    def _get_obs(self):
        obs = super()._get_obs()
        if not self._slbo_ready:  # during MujocoEnv.__init__ (observation-space probing)
            return obs
        return np.concatenate([obs, self.data.body(self._main_body).xpos.copy()])

    def mb_step(self, states: np.ndarray, actions: np.ndarray, next_states: np.ndarray):
        nq = self.data.qpos.size
        nv = self.data.qvel.size
        forward_reward = self._forward_reward_weight * (next_states[:, -3] - states[:, -3]) / self.mb_dt()
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        cfrc = next_states[:, nq + nv: nq + nv + self._n_cfrc]
        contact_cost = self._contact_cost_weight * np.sum(np.square(cfrc), axis=-1)
        min_z, max_z = self._healthy_z_range
        z = next_states[:, 2]
        healthy = np.isfinite(next_states[:, :nq + nv]).all(axis=-1) & (min_z <= z) & (z <= max_z)
        reward = forward_reward + healthy * self._healthy_reward - ctrl_cost - contact_cost
        dones = ~healthy if self._terminate_when_unhealthy else np.zeros_like(healthy)
        return reward, dones
