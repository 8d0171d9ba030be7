"""Port of upstream ``slbo/envs/batched_env.py``: N independent real envs stepped in lock-step."""
import numpy as np

from . import BaseBatchedEnv


class BatchedEnv(BaseBatchedEnv):
    def __init__(self, envs):
        self.env = envs[0]
        self.envs = envs
        self.n_envs = len(envs)
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space

    def step(self, actions):
        buf, infos = [], []
        for env, action in zip(self.envs, actions):
            next_state, reward, done, _truncated, info = env.step(action)
            buf.append((next_state, reward, done))
            infos.append(info)

        return [*(np.array(x) for x in zip(*buf)), infos]

    def reset(self):
        return self.partial_reset(range(self.n_envs))

    def partial_reset(self, indices):
        states = []
        for index in indices:
            states.append(self.envs[index].reset()[0])
        return np.array(states)

    def __repr__(self):
        return f'Batch<{self.n_envs}x {self.env}>'

    def set_state(self, state):
        pass
