"""Port of upstream ``slbo/dynamics_model.py``: deterministic normalised-difference MLP.

    f_φ(s, a) = s + Δ⁻¹( MLP_φ([norm_s(s), clip(a, -1, 1)]) )
    ŝ' = norm_s⁻¹( clip(norm_s(f_φ(s, a)), -100, 100) )

MLP [500, 500] ReLU; weights ~ truncated N(0, 1e-5) (upstream initialiser), zero biases,
so an untrained model predicts "no change" (the mean state difference).
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import nn

from slbo.utils.multi_layer_perceptron import MultiLayerPerceptron, bind_layers
from slbo.utils.normalizer import Normalizers
from slbo.utils.torch_utils import as_float32, truncated_normal_


class DynamicsModel(MultiLayerPerceptron):
    def __init__(self, dim_state: int, dim_action: int, normalizers: Normalizers, hidden_sizes: List[int]):
        self.dim_state = dim_state
        self.dim_action = dim_action
        self.hidden_sizes = list(hidden_sizes)
        super().__init__([dim_state + dim_action, *hidden_sizes, dim_state],
                         activation=nn.ReLU,
                         weight_initializer=lambda w: truncated_normal_(w, mean=0.0, std=1e-5))
        # stored outside the module tree (not a sub-module): the normalisers are shared and
        # checkpointed once, as upstream's `saver` does.
        self.__dict__['normalizers'] = normalizers

    def forward(self, states, actions):
        assert actions.shape[-1] == self.dim_action
        inputs = torch.cat([self.normalizers.state(states), actions.clamp(-1., 1.)], dim=1)

        normalized_diffs = super().forward(inputs)
        next_states = states + self.normalizers.diff(normalized_diffs, inverse=True)
        next_states = self.normalizers.state(self.normalizers.state(next_states).clamp(-100, 100), inverse=True)
        return next_states

    def eval_next_states(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Upstream ``model.eval('next_states', states=..., actions=...)``.

        Port (speed): the same ops as :meth:`forward` called functionally (no module-call
        overhead, the state normaliser's clamped std computed once) under inference mode;
        results are bit-identical to ``forward``.
        """
        with torch.inference_mode():
            device = self.net[0].weight.device
            return self.next_states_fast(as_float32(states, device), as_float32(actions, device)).double().cpu().numpy()

    def next_states_fast(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        assert actions.shape[-1] == self.dim_action
        return self.make_stepper()(states, actions)

    def make_stepper(self):
        """:meth:`next_states_fast` with the normaliser tensors and clamped std looked up
        once (port: speed; fixed during a rollout): ``step(states, actions)`` on float32
        tensors, the same ops in the same order, so the same numbers."""
        norm_s, norm_d = self.normalizers.state, self.normalizers.diff
        s_mean, s_std, d_mean, d_std = norm_s.op_mean, norm_s.op_std, norm_d.op_mean, norm_d.op_std
        s_scale = s_std.clamp_min(norm_s.eps)
        run = bind_layers(self.net)

        def step(states, actions, norm_states=None):
            """``norm_states``: ``normalizers.state(states)`` when the caller has it."""
            if norm_states is None:
                norm_states = (states - s_mean) / s_scale
            x = run(torch.cat([norm_states, actions.clamp(-1., 1.)], dim=1))
            next_states = x.mul_(d_std).add_(d_mean).add_(states)  # states + (x * d_std + d_mean)
            return next_states.sub_(s_mean).div_(s_scale).clamp_(-100, 100).mul_(s_std).add_(s_mean)

        step.normalize = lambda states: (states - s_mean) / s_scale
        return step

    def clone(self):
        return DynamicsModel(self.dim_state, self.dim_action, self.normalizers, self.hidden_sizes)
