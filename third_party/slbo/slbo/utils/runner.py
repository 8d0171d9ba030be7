"""Port of upstream ``slbo/utils/runner.py``: batched rollouts and GAE.

``compute_advantage`` is GAE(γ, λ) (Schulman et al., 2016) exactly as upstream: the value
of ``s'`` is bootstrapped unless ``done`` (timeouts bootstrap), and the λ-recursion is cut
at ``done | timeout``. As upstream, ``next_values`` at step t is ``V(s_{t+1})`` of the
*stored* next record (after a reset that is the new episode's first state); with SLBO's
virtual runner (``reset`` before every ``run`` and ``max_steps`` = steps per run) a
timeout only happens at the last step, where ``V(s')`` of the true next state is used.
"""
import numpy as np
import torch

from slbo.envs import BaseBatchedEnv
from slbo.policies import BasePolicy
from slbo.utils.dataset import Dataset, gen_dtype
from slbo.v_function import BaseVFunction


class Runner(object):
    _states: np.ndarray  # [np.float]
    _n_steps: np.ndarray
    _returns: np.ndarray

    def __init__(self, env: BaseBatchedEnv, max_steps: int, gamma=0.99, lambda_=0.95, rescale_action=False):
        self.env = env
        self.n_envs = env.n_envs
        self.gamma = gamma
        self.lambda_ = lambda_
        self.max_steps = max_steps
        self.rescale_action = rescale_action
        self._dtype = gen_dtype(env, 'state action next_state reward done timeout')

        self.reset()

    def reset(self):
        self.set_state(self.env.reset(), set_env_state=False)

    def set_state(self, states: np.ndarray, set_env_state=True):
        self._states = states.copy()
        if set_env_state:
            self.env.set_state(states)
        self._n_steps = np.zeros(self.n_envs, 'i4')
        self._returns = np.zeros(self.n_envs, 'f8')

    def get_state(self):
        return self._states.copy()

    def run(self, policy: BasePolicy, n_samples: int):
        """Port (speed): same steps and record order as upstream, but the records go into
        preallocated per-field arrays (one ``Dataset`` built at the end instead of a record
        array per step) and the policy / env run under ``torch.inference_mode``."""
        ep_infos = []
        n_steps = n_samples // self.n_envs
        assert n_steps * self.n_envs == n_samples
        fast_rollout = getattr(self.env, 'fast_rollout', None)
        if fast_rollout is not None and not self.rescale_action:
            step = fast_rollout(policy, n_steps, self._states)
            if step is not None:
                return self._run_fast(step, n_steps)
        fields = self._new_fields(n_steps)
        buf_states, buf_actions, buf_next_states = fields['state'], fields['action'], fields['next_state']
        buf_rewards, buf_dones, buf_timeouts = fields['reward'], fields['done'], fields['timeout']
        if self.rescale_action:
            lo, hi = self.env.action_space.low, self.env.action_space.high

        with torch.inference_mode():
            for T in range(n_steps):
                unscaled_actions = policy.get_actions(self._states)
                if self.rescale_action:
                    actions = (lo + (unscaled_actions + 1.) * 0.5 * (hi - lo))
                else:
                    actions = unscaled_actions

                next_states, rewards, dones, infos = self.env.step(actions)
                dones = np.asarray(dones).astype(bool)
                self._returns += rewards
                self._n_steps += 1
                timeouts = self._n_steps == self.max_steps

                buf_states[T] = self._states
                buf_actions[T] = unscaled_actions
                buf_next_states[T] = next_states
                buf_rewards[T] = rewards
                buf_dones[T] = dones
                buf_timeouts[T] = timeouts

                indices = np.flatnonzero(dones | timeouts)
                if len(indices) > 0:
                    next_states = next_states.copy()
                    next_states[indices] = self.env.partial_reset(indices)
                    for index in indices:
                        infos[index]['episode'] = {'return': self._returns[index]}
                        ep_infos.append(infos[index]['episode'])
                    self._n_steps[indices] = 0
                    self._returns[indices] = 0.

                self._states = next_states.copy()

        return self._to_dataset(fields, n_samples), ep_infos

    def _new_fields(self, n_steps: int):
        """Preallocated ``[n_steps, n_envs, ...]`` arrays, one per record field."""
        dtype = np.dtype(self._dtype)
        return {name: np.zeros((n_steps, self.n_envs) + dtype[name].shape, dtype[name].base) for name in dtype.names}

    def _to_dataset(self, fields, n_samples: int) -> Dataset:
        """The records in step-major order (upstream's order) as one ``Dataset``."""
        dtype = np.dtype(self._dtype)
        dataset = Dataset(self._dtype, n_samples)
        dataset.extend(np.rec.fromarrays([fields[name].reshape((n_samples,) + fields[name].shape[2:])
                                          for name in dtype.names], dtype=dtype))
        return dataset

    def _run_fast(self, step, n_steps: int):
        """:meth:`run` on an env's ``fast_rollout`` step (port: speed; the virtual env):
        the same records, episode bookkeeping and resets as the loop in :meth:`run`, with
        the policy and env calls fused into ``step(t)``."""
        ep_infos = []
        fields = self._new_fields(n_steps)
        buf_states, buf_actions, buf_next_states = fields['state'], fields['action'], fields['next_state']
        buf_rewards, buf_dones, buf_timeouts = fields['reward'], fields['done'], fields['timeout']
        returns, n_steps_ep = self._returns, self._n_steps
        with torch.inference_mode():
            for T in range(n_steps):
                states, actions, next_states, rewards, dones = step(T)
                dones = np.asarray(dones).astype(bool)
                returns += rewards
                n_steps_ep += 1
                timeouts = n_steps_ep == self.max_steps

                buf_states[T] = states
                buf_actions[T] = actions
                buf_next_states[T] = next_states
                buf_rewards[T] = rewards
                buf_dones[T] = dones
                buf_timeouts[T] = timeouts

                ended = dones | timeouts
                if ended.any():
                    indices = np.flatnonzero(ended)
                    self.env.partial_reset(indices)  # the env's states now hold the new episodes' starts
                    for index in indices:
                        ep_infos.append({'return': returns[index]})
                    n_steps_ep[indices] = 0
                    returns[indices] = 0.
        self._states = self.env._states.copy()
        return self._to_dataset(fields, n_steps * self.n_envs), ep_infos

    def compute_advantage(self, vfn: BaseVFunction, samples: Dataset):
        n_steps = len(samples) // self.n_envs
        samples = samples.data.reshape((n_steps, self.n_envs))
        # port (speed): plain field arrays (not a record per step); same arithmetic as upstream
        rewards, dones, timeouts = samples.reward, samples.done, samples.timeout
        use_next_vf = ~dones
        use_next_adv = ~(dones | timeouts)

        next_values = vfn.get_values(samples[-1].next_state)
        values = vfn.get_values(samples.reshape(-1).state).reshape(n_steps, self.n_envs)
        advantages = np.zeros((n_steps, self.n_envs), dtype=np.float32)
        last_gae_lambda = 0

        for t in reversed(range(n_steps)):
            delta = rewards[t] + self.gamma * next_values * use_next_vf[t] - values[t]
            advantages[t] = last_gae_lambda = delta + self.gamma * self.lambda_ * last_gae_lambda * use_next_adv[t]
            next_values = values[t]
        return advantages.reshape(-1), values.reshape(-1)
