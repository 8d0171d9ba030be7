"""Port of upstream ``slbo/utils/multi_layer_perceptron.py``."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from slbo.utils.torch_utils import make_linear


_FUNCTIONAL = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
_IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_}  # on a fresh linear output: same values


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` op for op (same kernels, same autograd graph) without a module call per
    layer (port: speed; the networks are small, so call overhead dominated)."""
    for layer in layers:
        if type(layer) is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        else:
            fn = _FUNCTIONAL.get(type(layer))
            x = fn(x) if fn is not None else layer(x)
    return x


def bind_layers(layers: nn.Sequential):
    """``run(x)``: :func:`run_layers` for inference on a network that stays fixed (port:
    speed; the fused virtual rollout), each layer's parameters looked up once and each
    activation applied in place on the fresh linear output before it (same values). Only
    ``Linear``, ``ReLU`` and ``Tanh`` layers."""
    plan = []
    for layer in layers:
        if type(layer) is nn.Linear:
            plan.append((layer.weight, layer.bias))
        elif type(layer) in _IN_PLACE and plan and type(plan[-1]) is tuple:  # never in place on the input
            plan.append(_IN_PLACE[type(layer)])
        else:
            raise TypeError(f"bind_layers: {type(layer).__name__} is not a Linear or an activation after one")

    def run(x: torch.Tensor) -> torch.Tensor:
        for layer in plan:
            x = F.linear(x, *layer) if type(layer) is tuple else layer(x)
        return x

    return run


class MultiLayerPerceptron(nn.Module):
    def __init__(self, blocks, activation=nn.ReLU, squeeze=False, weight_initializer=None):
        super().__init__()

        self._blocks = tuple(blocks)
        layers = []
        for in_features, out_features in zip(blocks[:-1], blocks[1:]):
            if layers:
                layers.append(activation())
            layers.append(make_linear(in_features, out_features, weight_initializer))
        self.net = nn.Sequential(*layers)

        self._squeeze = squeeze
        self._activation = activation
        self._weight_initializer = weight_initializer

    def forward(self, *inputs):
        if len(inputs) > 1:
            inputs = torch.cat(inputs, dim=-1)
        else:
            inputs = inputs[0]
        out = run_layers(self.net, inputs)
        if self._squeeze:
            out = out.squeeze(1)
        return out

    @torch.no_grad()
    def fast(self, *inputs):
        x = torch.as_tensor(np.concatenate(inputs, axis=-1), dtype=torch.float32)
        return self.forward(x).numpy()

    def clone(self):
        return MultiLayerPerceptron(self._blocks, self._activation, self._squeeze, self._weight_initializer)

    def extra_repr(self):
        return f'activation = {self._activation}, blocks = {self._blocks}, squeeze = {self._squeeze}'
