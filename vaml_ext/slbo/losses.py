"""The ``slbo`` registry entry: SLBO's own multi-step model loss as a :class:`ModelLoss`."""

from __future__ import annotations

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

    def _loss(self, multi_step_sq_err: torch.Tensor, mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        return self.reduce(multi_step_sq_err, mask)


@register_loss("mle_va_slbo")
class VASLBOMLELoss(ModelLoss):
    """The authors' SLBO "MLE" ablation, reproduced *with its bug* (do not use as an MLE).

    GitHub ``nirbhayjm/va_slbo``, ``slbo/loss/mle_loss.py`` l.61-64::

        ns_diffs = self._model(cur_states, actions)   # DynamicsModel.forward: already s + Δ̂
        pred_ns = cur_states + ns_diffs               # so this is 2 s + Δ̂
        loss = self._criterion(pred_ns, next_states_)

    on raw (un-normalised) states, for all ``multi_step`` (2, ``configs/algos/mle.yml``) x 128
    transitions of the batch, with ``criterion`` = ``MSELoss(size_average=False)``
    (``slbo/main.py`` l.129-134), i.e. the squared error *summed* over state dims; the batch
    mean is then taken (``build_backward``: ``op_loss.reduce_mean``). ``DynamicsModel.forward``
    returning ``s + Δ̂`` is ``slbo/dynamics_model.py`` l.33-40. The minimiser makes the model
    output ``s' - s`` as its next state, so virtual rollouts run on the state *difference*.

    ``mle_va_slbo_sq_err``: ``[N]`` per-transition ``Σ_j (s_j + f_φ(s, a)_j - s'_j)²``.
    Our correct ablation is ``mle``.
    """

    value_aware = False
    in_keys = ("mle_va_slbo_sq_err",)

    def _loss(self, mle_va_slbo_sq_err: torch.Tensor, **_) -> torch.Tensor:
        return mle_va_slbo_sq_err.mean()
