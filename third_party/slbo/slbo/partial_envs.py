"""Port of upstream ``slbo/partial_envs.py``: env id -> model-based env class.

Gymnasium v5 ids (plus the classic-control extras) replace rllab's "-v2" ids; the
upstream ids are accepted as aliases of the v5 envs (see PORTING.md for the reward and
observation differences). No ``TimeLimit`` wrapper: SLBO's runner applies ``max_steps``.
"""
import numpy as np

from slbo.envs.classic_control.acrobot_env import ContinuousAcrobotEnv
from slbo.envs.classic_control.cartpole_env import ContinuousCartPoleEnv
from slbo.envs.classic_control.pendulum_env import PendulumEnv
from slbo.envs.mujoco.ant_env import AntEnv
from slbo.envs.mujoco.half_cheetah_env import HalfCheetahEnv
from slbo.envs.mujoco.hopper_env import HopperEnv
from slbo.envs.mujoco.reacher_env import ReacherEnv
from slbo.envs.mujoco.swimmer_env import SwimmerEnv
from slbo.envs.mujoco.walker2d_env import Walker2DEnv

ENVS = {
    'HalfCheetah-v5': HalfCheetahEnv,
    'Walker2d-v5': Walker2DEnv,
    'Ant-v5': AntEnv,
    'Hopper-v5': HopperEnv,
    'Swimmer-v5': SwimmerEnv,
    'Reacher-v5': ReacherEnv,
    'Pendulum-v1': PendulumEnv,
    'ContinuousAcrobot-v1': ContinuousAcrobotEnv,
    'ContinuousCartPole-v1': ContinuousCartPoleEnv,
}
ALIASES = {  # upstream ids
    'HalfCheetah-v2': 'HalfCheetah-v5',
    'Walker2D-v2': 'Walker2d-v5',
    'Ant-v2': 'Ant-v5',
    'Hopper-v2': 'Hopper-v5',
    'Swimmer-v2': 'Swimmer-v5',
}


def make_env(id: str):
    id = ALIASES.get(id, id)
    if id not in ENVS:
        raise KeyError(f'unknown env id {id!r}; valid: {sorted(ENVS)} (aliases: {sorted(ALIASES)})')
    env = ENVS[id]()
    # upstream: env.seed(np.random.randint(2**60)); Gymnasium seeds through reset
    seed = int(np.random.randint(2**60))
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env
