"""Port of upstream ``slbo/envs/virtual_env.py``: the learned model as a batched env.

``step``: ``ŝ' = f_φ(s, a)`` (deterministic), rewards/dones from the real env's
``mb_step(s, scale(a), ŝ')``. ``partial_reset`` draws initial states from the real env's
``reset()`` (SLBO's "start from real resets").
"""
import numpy as np
import torch
from gymnasium.spaces import Box

from slbo.dynamics_model import DynamicsModel
from slbo.envs import BaseBatchedEnv, BaseModelBasedEnv


class VirtualEnv(BaseBatchedEnv):
    _states: np.ndarray

    def __init__(self, model: DynamicsModel, env: BaseModelBasedEnv, n_envs: int, opt_model=False):
        super().__init__()
        self.n_envs = n_envs
        self.observation_space = env.observation_space  # ???

        dim_state = env.observation_space.shape[0]
        if opt_model:
            self.action_space = Box(low=np.r_[env.action_space.low, np.zeros(dim_state) - 1.],
                                    high=np.r_[env.action_space.high, np.zeros(dim_state) + 1.],
                                    dtype=np.float32)
        else:
            self.action_space = env.action_space

        self._opt_model = opt_model
        self._model = model
        self._env = env

        self._states = np.zeros((self.n_envs, dim_state), dtype=np.float64)  # port: upstream float32

    def _scale_action(self, actions):
        lo, hi = self.action_space.low, self.action_space.high
        return lo + (actions + 1.) * 0.5 * (hi - lo)

    def step(self, actions):
        if self._opt_model:
            actions = actions[..., :self._env.action_space.shape[0]]

        next_states = self._model.eval_next_states(self._states, actions)
        rewards, dones = self._env.mb_step(self._states, self._scale_action(actions), next_states)

        self._states = next_states
        return self._states.copy(), rewards, dones, [{} for _ in range(self.n_envs)]

    def fast_rollout(self, policy, n_steps: int, states: np.ndarray):
        """Policy + model + ``mb_step`` for one rollout without the per-step generic
        plumbing (port: speed; ``Runner.run``'s fast path), or None where it does not apply
        (another policy or model class, ``opt_model``, tensors off the CPU, or the
        runner's states not this env's). Returns ``step(t) -> (states, actions,
        next_states, rewards, dones)`` (NumPy, as ``policy.get_actions`` + :meth:`step`
        produce them, same numbers): the float32 cast of the float64 states is made once
        per step and shared by policy and model (both make the same cast), and the env's
        states advance as in :meth:`step`. Call ``step`` under ``torch.inference_mode``
        (``Runner._run_fast`` does, once per rollout).
        """
        from slbo.dynamics_model import DynamicsModel
        from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy

        if type(policy) is not GaussianMLPPolicy or type(self._model) is not DynamicsModel or self._opt_model:
            return None
        if self._model.net[0].weight.device.type != 'cpu' or not np.array_equal(states, self._states):
            return None
        sample = policy.make_sampler(n_steps, self.n_envs)
        if sample is None:
            return None
        model_step = self._model.make_stepper()
        mb_step = self._env.mb_step
        lo, span = self.action_space.low, self.action_space.high - self.action_space.low

        def scale_action(actions):  # _scale_action with ``hi - lo`` computed once (same values)
            return lo + (actions + 1.) * 0.5 * span

        normalize = model_step.normalize if policy.normalizer is self._model.normalizers.state else None

        def step(t):
            states = self._states  # (the runner calls this under torch.inference_mode)
            s32 = torch.from_numpy(states).float()
            norm = normalize(s32) if normalize is not None else None  # one normalisation for both
            actions = sample(t, s32, norm)
            next_states = model_step(s32, torch.from_numpy(actions).float(), norm).double().numpy()
            rewards, dones = mb_step(states, scale_action(actions), next_states)
            self._states = next_states
            return states, actions, next_states, rewards, dones

        return step

    def reset(self):
        return self.partial_reset(range(self.n_envs))

    def partial_reset(self, indices):
        initial_states = np.array([self._env.reset()[0] for _ in indices])

        self._states = self._states.copy()
        self._states[indices] = initial_states

        return initial_states.copy()

    def set_state(self, states):
        self._states = states.copy()

    def render(self, mode='human'):
        pass
