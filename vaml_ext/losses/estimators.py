"""Estimators of ``E_{ŝ~P_φ(·|s,a)}[V(ŝ)]`` and the model advantage (paper Eq. 9).

Categorical model -> exact sum over next states; Gaussian model -> reparameterised
samples (k >= 1; the paper's MBPO code draws one ``rsample``, ``va_mbpo``
``mbrl/models/gaussian_mlp.py`` l. 336-381); deterministic model -> the prediction
itself. In every case gradients flow to the *model* output only: the value function
must be evaluated with its parameters frozen (use :func:`frozen` or pass values
computed under ``torch.no_grad``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

ValueFn = Callable[[torch.Tensor], torch.Tensor]


def expected_value_categorical(probs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Exact ``Σ_ŝ P_φ(ŝ|s,a) V(ŝ)`` for a categorical model.

    ``probs``: ``[..., S]`` next-state probabilities (rows sum to 1); ``values``: ``[S]``
    (or broadcastable ``[..., S]``) state values, treated as constants.
    """
    if probs.shape[-1] != values.shape[-1]:
        raise ValueError(f"probs has {probs.shape[-1]} states but values has {values.shape[-1]}")
    return (probs * values.detach()).sum(-1)


def expected_value_gaussian(
    mean: torch.Tensor,
    std: torch.Tensor,
    value_fn: ValueFn,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte-Carlo ``E_{ŝ~N(mean, std²)}[V(ŝ)]`` with ``num_samples`` reparameterised draws.

    ``mean``/``std``: ``[B, d]``; ``value_fn`` maps ``[N, d]`` states to ``[N]`` values.
    Returns ``[B]``. Gradients reach ``mean`` and ``std`` through ŝ = mean + std·ε.
    """
    if num_samples < 1:
        raise ValueError(f"va_samples={num_samples} must be >= 1")
    eps = torch.randn((num_samples,) + tuple(mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
    samples = mean.unsqueeze(0) + std.unsqueeze(0) * eps  # [k, B, d]
    vals = value_fn(samples.reshape(-1, mean.shape[-1])).reshape(num_samples, -1)
    return vals.mean(0)


def expected_value_deterministic(prediction: torch.Tensor, value_fn: ValueFn) -> torch.Tensor:
    """``V(ŝ)`` at a deterministic prediction ``ŝ = f_φ(s, a)`` (SLBO's model)."""
    return value_fn(prediction).reshape(-1)


def model_advantage(v_next: torch.Tensor, expected_v_pred: torch.Tensor) -> torch.Tensor:
    """Per-transition model advantage ``A = V(s') - E_{ŝ~P_φ}[V(ŝ)]`` (paper Eq. 9).

    ``v_next`` (the value of the *real* next state) carries no gradient.
    """
    return v_next.detach().reshape(expected_v_pred.shape) - expected_v_pred


@contextlib.contextmanager
def frozen(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on every parameter of ``modules``.

    Inside, a value network can be evaluated *with* autograd through its inputs
    (needed for reparameterised samples) while its own parameters get no gradient, so a
    model update cannot change the value function.
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
