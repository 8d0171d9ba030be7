"""Port of upstream ``slbo/utils/OU_noise.py``: Ornstein-Uhlenbeck exploration noise.

``x_{t+1} = x_t + θ (μ - x_t) + σ ε``, ε ~ N(0, I) from NumPy's global RNG (as upstream);
added to the (already stochastic) policy action during real-data collection. SLBO
defaults: θ = 0.15, σ = 0.3 (``FLAGS.OUNoise``). The noise state is never reset between
stages (upstream behaviour).
"""
import numpy as np

from slbo.policies import BasePolicy


class OUNoise(object):
    _policy: BasePolicy

    def __init__(self, action_space, mu=0.0, theta=0.15, sigma=0.3, shape=None):
        self.mu = mu
        self.theta = theta
        self.sigma = sigma
        self.action_space = action_space
        self._state = None
        if shape:
            self.shape = shape
        else:
            self.shape = action_space.shape

        self.reset()

    def reset(self):
        self._state = np.ones(self.shape) * self.mu

    def next(self):
        delta = self.theta * (self.mu - self._state) + self.sigma * np.random.randn(*self._state.shape)
        self._state = self._state + delta
        return self._state

    def get_actions(self, states):
        return self._policy.get_actions(states) + self.next()

    def make(self, policy: BasePolicy):
        self._policy = policy
        return self

    # port addition (checkpoints)
    def state_dict(self):
        return {'state': self._state.copy()}

    def load_state_dict(self, state):
        self._state = np.array(state['state'])
