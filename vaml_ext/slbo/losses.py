"""The ``slbo`` registry entry: SLBO's own multi-step model loss as a :class:`ModelLoss`."""
from __future__ import annotations

from typing import Optional

import torch

from vaml_ext.losses.base import ModelLoss
from vaml_ext.losses.registry import register_loss


@register_loss("slbo")
class SLBOMultiStepLoss(ModelLoss):
    """SLBO (Luo et al., 2019, Eq. 6.1): batch mean of the per-sample H-step error.

    ``multi_step_sq_err``: ``[B]`` per-sample values of upstream's ``MultiStepLoss.forward``
    -- ``(1/H) Σ_i criterion(e_i)`` on normalised state-difference errors with the model
    unrolled H = 2 steps (criterion ``L2`` = per-sample root-mean-square; the key keeps the
    registry's name for a non-negative per-sample error). The reduction is the mean, so
    ``slbo`` through the registry is exactly upstream's training loss.
    """

    value_aware = False
    in_keys = ("multi_step_sq_err",)

    def _loss(self, multi_step_sq_err: torch.Tensor, mask: Optional[torch.Tensor] = None, **_) -> torch.Tensor:
        return self.reduce(multi_step_sq_err, mask)
