"""Port of upstream ``slbo/envs/__init__.py``: batched-env and model-based-env interfaces.

``BaseModelBasedEnv.mb_step(states, actions, next_states) -> (rewards, dones)`` is the
*known* reward/termination function SLBO uses for virtual (model) steps; it must be a
function of observations (and the env-scaled action) only. ``verify()`` checks it
against the env's own ``step`` on random rollouts, as upstream does before training.
Environments follow the Gymnasium API (``reset() -> (obs, info)``, 5-tuple ``step``);
``done`` means ``terminated`` (time limits are the runner's ``max_steps``).
"""
from __future__ import annotations

import abc
import logging

import numpy as np

from slbo.utils.dataset import Dataset, gen_dtype

logger = logging.getLogger("slbo")


class BaseBatchedEnv(abc.ABC):
    n_envs: int

    @abc.abstractmethod
    def step(self, actions):
        pass

    def reset(self):
        return self.partial_reset(range(self.n_envs))

    @abc.abstractmethod
    def partial_reset(self, indices):
        pass

    def set_state(self, state):
        logger.warning('`set_state` is not implemented')


class BaseModelBasedEnv(abc.ABC):
    """Mix-in for Gymnasium envs (list it *after* the Gymnasium class)."""

    @abc.abstractmethod
    def mb_step(self, states: np.ndarray, actions: np.ndarray, next_states: np.ndarray):
        raise NotImplementedError

    def verify(self, n=2000, eps=1e-4, seed=None):
        """Random-action rollouts; assert ``mb_step`` reproduces rewards (L∞ < eps) and dones.

        Returns the L∞ reward error (port addition, for tests and logs).
        """
        dataset = Dataset(gen_dtype(self, 'state action next_state reward done'), n)
        state, _ = self.reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        for _ in range(n):
            action = self.action_space.sample()
            next_state, reward, done, _, _ = self.step(action)
            dataset.append((state, action, next_state, reward, done))

            state = next_state
            if done:
                state, _ = self.reset()

        rewards_, dones_ = self.mb_step(dataset.state, dataset.action, dataset.next_state)
        diff = dataset.reward - rewards_
        l_inf = np.abs(diff).max()
        logger.info('rewarder difference: %.6f', l_inf)

        assert np.allclose(np.asarray(dones_, dtype=float), dataset.done.astype(float)), 'mb_step dones differ'
        assert l_inf < eps, f'mb_step rewards differ: L_inf = {l_inf}'
        return l_inf

    def mb_dt(self):
        """The env's ``dt``, looked up once (port: speed; MuJoCo's ``dt`` property reads
        the model through the bindings on every call, and ``mb_step`` runs every step)."""
        dt = self.__dict__.get('_mb_dt')
        if dt is None:
            dt = self.__dict__['_mb_dt'] = self.dt
        return dt
