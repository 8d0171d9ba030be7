"""Port of upstream ``slbo/policies/gaussian_mlp_policy.py``.

π(a|s) = N(μ_θ(norm(s)), diag(exp(log_std))): MLP [32, 32] tanh (normc(1) init), output
layer normc(0.01), state-independent log-std initialised to log(init_std) = log 1.
``get_actions`` is upstream's ``fast`` path: mean from the network, noise from NumPy's
global RNG. Actions live in [-1, 1]-normalised units (the real runner rescales them to
the env's bounds; the model clips them to [-1, 1]).
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import nn

from slbo.policies import BasePolicy
from slbo.utils.multi_layer_perceptron import bind_layers, run_layers
from slbo.utils.normalizer import GaussianNormalizer
from slbo.utils.torch_utils import as_float32, make_linear, normc_
from slbo.utils.truncated_normal import LimitedEntNormal


class GaussianMLPPolicy(nn.Module, BasePolicy):
    def __init__(self, dim_state: int, dim_action: int, hidden_sizes: List[int], normalizer: GaussianNormalizer,
                 init_std=1.):
        super().__init__()
        self.dim_state = dim_state
        self.dim_action = dim_action
        self.hidden_sizes = list(hidden_sizes)
        self.init_std = init_std
        self.normalizer = normalizer

        layers = []
        all_sizes = [dim_state, *self.hidden_sizes]
        for i, (in_features, out_features) in enumerate(zip(all_sizes[:-1], all_sizes[1:])):
            layers.append(make_linear(in_features, out_features, lambda w: normc_(w, 1.)))
            layers.append(nn.Tanh())
        layers.append(make_linear(all_sizes[-1], dim_action, lambda w: normc_(w, 0.01)))
        self.net = nn.Sequential(*layers)

        self.op_log_std = nn.Parameter(torch.full([self.dim_action], float(np.log(self.init_std)), dtype=torch.float32))

    def policy_parameters(self):
        """The trainable parameters (the shared state normaliser holds only buffers)."""
        return [p for p in self.parameters()]

    def forward(self, states):
        actions_mean = run_layers(self.net, self.normalizer(states))
        distribution = LimitedEntNormal(actions_mean, self.op_log_std.exp().expand_as(actions_mean))
        return distribution

    def get_actions(self, states):
        return self.fast(states)

    def fast(self, states, use_log_prob=False):
        """Upstream's ``fast`` path. Port (speed): one functional pass (same kernels as
        :meth:`forward`, no module-call overhead) under inference mode."""
        with torch.inference_mode():
            actions_mean = self.mean_fast(as_float32(states, self.op_log_std.device))
            actions_mean = actions_mean.double().cpu().numpy()
            log_std = self.op_log_std.detach().double().cpu().numpy()
        noise = np.random.randn(*actions_mean.shape)
        actions = actions_mean + noise * np.exp(log_std)
        if use_log_prob:
            log_prob = -noise**2 / 2 - np.log(2 * np.pi) / 2 - log_std
            return actions, log_prob.sum(axis=1)
        return actions

    def mean_fast(self, states: torch.Tensor) -> torch.Tensor:
        """``μ_θ(norm(s))`` for float32 ``states``, op for op as ``self.net(self.normalizer(states))``."""
        return run_layers(self.net, self.normalizer(states))

    def make_sampler(self, n_steps: int, n_envs: int):
        """``get_actions`` for a whole rollout of ``n_steps`` steps of ``n_envs`` states, or
        None off the CPU (port: speed; used by ``VirtualEnv.fast_rollout``).

        Returns ``sample(t, states) -> actions``: ``states`` float32 ``[n_envs, dim_state]``
        (the float32 cast of the float64 states, as :meth:`fast` makes it), ``actions``
        float64 NumPy, the same numbers as ``get_actions`` at step ``t``: the noise of all
        ``n_steps`` calls is drawn here in one ``np.random.randn`` call, which yields the
        same values (and leaves the generator in the same state) as one call per step,
        provided nothing else draws from NumPy's global generator during the rollout
        (true for the virtual runner: the env's resets draw from the env's own
        ``np_random``). The state normaliser's clamped std and ``exp(log_std)`` are
        computed once (both are fixed during a rollout).
        """
        if self.op_log_std.device.type != 'cpu':
            return None
        log_std = self.op_log_std.detach().double().numpy()
        noise = np.random.randn(n_steps, n_envs, self.dim_action)
        noise *= np.exp(log_std)  # element-wise, the same products as per step
        mean, scale = self.normalizer.op_mean, self.normalizer.op_std.clamp_min(self.normalizer.eps)
        run = bind_layers(self.net)

        def sample(t, states, norm_states=None):
            """``norm_states``: ``self.normalizer(states)`` when the caller has it."""
            x = (states - mean) / scale if norm_states is None else norm_states
            return run(x).double().numpy() + noise[t]

        return sample

    def clone(self):
        return GaussianMLPPolicy(self.dim_state, self.dim_action, self.hidden_sizes, self.normalizer,
                                 self.init_std).to(self.op_log_std.device)
