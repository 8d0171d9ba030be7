"""Port of upstream ``slbo/v_function/mlp_v_function.py``: V(s) = MLP[64, 64] tanh on norm(s)."""
from __future__ import annotations

import torch
from torch import nn

from slbo.utils.multi_layer_perceptron import MultiLayerPerceptron
from slbo.utils.torch_utils import as_float32, module_device, normc_
from slbo.v_function import BaseVFunction


class MLPVFunction(nn.Module, BaseVFunction):
    def __init__(self, dim_state, hidden_sizes, normalizer=None):
        super().__init__()
        self.mlp = MultiLayerPerceptron((dim_state, *hidden_sizes, 1), activation=nn.Tanh, squeeze=True,
                                        weight_initializer=lambda w: normc_(w, 1.))
        self.normalizer = normalizer

    def forward(self, states):
        states = self.normalizer(states)
        return self.mlp(states)

    @torch.no_grad()
    def get_values(self, states):
        return self.forward(as_float32(states, module_device(self))).double().cpu().numpy()
