"""HalfCheetah on Gymnasium MuJoCo v5 (upstream: rllab ``half_cheetah_env``, SLBO observation).

Observation ``[qpos (9, incl. x), qvel (9)]`` (18-d). Reward (v5):
``(x'-x)/dt - 0.1 Σ a²``; never terminates.
"""
import numpy as np
from gymnasium.envs.mujoco import half_cheetah_v5

from slbo.envs import BaseModelBasedEnv


class HalfCheetahEnv(half_cheetah_v5.HalfCheetahEnv, BaseModelBasedEnv):
    def __init__(self, **kwargs):
        kwargs.setdefault('exclude_current_positions_from_observation', False)
        assert not kwargs['exclude_current_positions_from_observation']
        super().__init__(**kwargs)

    def mb_step(self, states, actions, next_states):
        reward_ctrl = -self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        reward_fwd = self._forward_reward_weight * (next_states[:, 0] - states[:, 0]) / self.mb_dt()
        return reward_ctrl + reward_fwd, np.zeros_like(reward_fwd, dtype=bool)
