"""PyTorch replacements for the bits of ``lunzi.nn`` / ``baselines.common.tf_util`` SLBO uses.

* :func:`normc_` -- ``baselines`` ``normc_initializer(std)``: each output unit's incoming
  weight vector is a Gaussian draw rescaled to norm ``std``. (TF stores weights
  ``[in, out]`` and normalises over axis 0; torch stores ``[out, in]``, so rows here.)
* :func:`truncated_normal_` -- ``tf.truncated_normal_initializer`` (re-draws beyond 2 std).
* :func:`glorot_uniform_` -- ``lunzi.nn.Linear``'s default initializer.
* :func:`get_flat` / :func:`set_flat` -- ``lunzi.nn.FlatParam``.
* :func:`flat_grad` and :func:`hessian_vec_prod` -- ``lunzi.nn.utils``.
"""
from __future__ import annotations

import math
from typing import Iterable, List

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def normc_(weight: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    out = torch.randn_like(weight)
    out *= std / out.pow(2).sum(dim=1, keepdim=True).sqrt()
    weight.copy_(out)
    return weight


@torch.no_grad()
def truncated_normal_(weight: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return nn.init.trunc_normal_(weight, mean=mean, std=std, a=mean - 2 * std, b=mean + 2 * std)


@torch.no_grad()
def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    out_features, in_features = weight.shape
    r = math.sqrt(6.0 / (in_features + out_features))
    return nn.init.uniform_(weight, -r, r)


def make_linear(in_features: int, out_features: int, init=None) -> nn.Linear:
    """``lunzi.nn.Linear``: zero bias, ``init`` (default Glorot-uniform) on the weight."""
    layer = nn.Linear(in_features, out_features)
    (init or glorot_uniform_)(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def as_float32(x, device=None) -> torch.Tensor:
    """NumPy -> float32 tensor on ``device`` (port: device support; a no-op move on CPU)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t if device is None or t.device == device else t.to(device)


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def get_flat(params: Iterable[torch.Tensor]) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).double().cpu().numpy()


@torch.no_grad()
def set_flat(params: Iterable[torch.Tensor], flat: np.ndarray) -> None:
    flat = torch.as_tensor(flat)
    offset = 0  # (a host -> device copy per parameter when the parameters live on an accelerator)
    for p in params:
        n = p.numel()
        p.copy_(flat[offset:offset + n].reshape(p.shape).to(p.dtype))
        offset += n
    assert offset == flat.numel()


def n_parameters(params: Iterable[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


def flat_grad(output: torch.Tensor, params: List[torch.Tensor], **kwargs) -> torch.Tensor:
    grads = torch.autograd.grad(output, params, allow_unused=True, **kwargs)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def hessian_vec_prod(output: torch.Tensor, params: List[torch.Tensor], tangents: torch.Tensor) -> torch.Tensor:
    """``∇²_θ output · tangents`` by double back-prop (``lunzi.nn.utils.hessian_vec_prod``)."""
    g = flat_grad(output, params, create_graph=True)
    return flat_grad((g * tangents.to(device=g.device, dtype=g.dtype)).sum(), params)
