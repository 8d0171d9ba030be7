"""The contract every registered model loss obeys (TorchRL style: a loss is a module).

A :class:`ModelLoss` is a parameter-free :class:`torch.nn.Module` that maps named,
already-computed per-transition quantities (``in_keys``) to a scalar. Frameworks
(mbrl-lib MBPO, the SLBO port, the gridworld) compute those quantities from their own
models and value functions -- e.g. the model advantage ``A`` of Eq. (9)-(10) through
:mod:`vaml_ext.losses.estimators` -- and the loss only reduces them. That keeps one
implementation of each objective for all three consumers and makes every loss testable
against closed forms on hand-built tensors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from vaml_ext.checks import check_choice, check_number


class ModelLoss(nn.Module):
    """Base class of registered model losses.

    Class attributes set by subclasses:

    * ``name`` -- the registry key (set by :func:`register_loss`).
    * ``value_aware`` -- ``True`` if the loss needs a value function (then ``coeff``
      is the paper's ``va_loss_coeff``, default 0.01).
    * ``needs_trajectories`` -- ``True`` for the direct forms (Eq. 8) that sum over
      whole trajectories; their ``advantage`` input is ``[num_traj, T]``.
    * ``takes_refit`` -- ``True`` if the loss is meant to run with Algorithm 2's
      stale-value refit (the paper's model-advantage losses); ``False`` for MLE and for
      losses that, like VaGraM, re-read the current critic at every model-training call.
    * ``in_keys`` -- names of the keyword inputs :meth:`forward` requires.

    ``reduction`` (constructor argument, one of :data:`REDUCTIONS`) says how the
    per-transition (or per-trajectory) terms become the scalar: ``"mean"`` (default,
    the paper's Eq. 8-10 estimators) or ``"sum"`` (the paper's MBPO code sums over
    ensemble members and batch, ``va_mbpo`` ``mbrl/models/gaussian_mlp.py`` l. 389-396).
    Subclasses reduce through :meth:`reduce`.
    """

    name: ClassVar[str] = "<unregistered>"
    value_aware: ClassVar[bool] = False
    needs_trajectories: ClassVar[bool] = False
    takes_refit: ClassVar[bool] = False
    in_keys: ClassVar[tuple[str, ...]] = ()
    default_coeff: ClassVar[float] = 1.0
    REDUCTIONS: ClassVar[tuple[str, ...]] = ("mean", "sum")

    def __init__(self, coeff: float | None = None, reduction: str = "mean"):
        super().__init__()
        check_choice("reduction", reduction, self.REDUCTIONS, f"for model_loss={self.name!r}")
        self._reduction = reduction
        coeff = self.default_coeff if coeff is None else coeff
        key = "va_loss_coeff" if self.value_aware else "coeff"
        checked = check_number(key, coeff, 0.0, lo_open=True, context=f"for model_loss={self.name!r}")
        assert checked is not None
        self.coeff = checked

    @property
    def reduction(self) -> str:
        """``"mean"`` or ``"sum"``: how :meth:`reduce` turns terms into the scalar loss."""
        return self._reduction

    def reduce(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean or sum (per :attr:`reduction`) of ``x`` over all entries where ``mask`` is 1."""
        if mask is None:
            return x.sum() if self._reduction == "sum" else x.mean()
        mask = mask.to(x.dtype)
        total = (x * mask).sum()
        return total if self._reduction == "sum" else total / mask.sum().clamp_min(1.0)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        missing = [k for k in self.in_keys if inputs.get(k) is None]
        if missing:
            raise KeyError(f"model loss {self.name!r} needs inputs {list(self.in_keys)}; missing {missing}")
        return self.coeff * self._loss(
            **{k: inputs[k] for k in self.in_keys}, **{k: v for k, v in inputs.items() if k not in self.in_keys}
        )

    def _loss(self, *args: Any, **inputs: Any) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, coeff={self.coeff}, reduction={self._reduction!r}"
