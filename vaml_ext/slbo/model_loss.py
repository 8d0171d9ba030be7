"""Model-learning objectives for SLBO chosen by registry name (hook 1 of the patch series).

:class:`RegistryModelLoss` subclasses the port's ``MultiStepLoss`` and replaces only its
*training* objective; optimiser (Adam 1e-3, weight decay 1e-5, global-norm clip 2.0),
batches (``sample_multi_step(128, 1, 2)``) and the logged validation metric (upstream's
multi-step loss) stay upstream's.

* ``slbo``    -- the upstream multi-step loss, reduced by the registry (identical values).
* ``mle``     -- "MLE" ablation (paper §5.3: only the MLE term of SLBO's objective):
  single-step squared error of the next state, in units of the state-difference std,
  ``mean_i mean_j ((f_φ(s_i,a_i) - s'_i)_j / σ_Δ,j)²`` over every real transition of the batch.
* ``ma_l1``   -- MA-L1 (paper Eq. 10): ``c · mean_i |V(s'_i) - V(f_φ(s_i, a_i))|``.
* ``ma_vaml`` -- MA-VAML (IterVAML): ``c · mean_i (V(s'_i) - V(f_φ(s_i, a_i)))²``.
* ``mle_va_slbo`` -- the authors' MLE ablation reproduced with its bug (``2 s + Δ̂`` vs
  ``s'`` on raw states, squared error summed over dims; :class:`vaml_ext.slbo.losses.VASLBOMLELoss`).

Value-aware losses use the TRPO value net ``V`` and the deterministic prediction
``f_φ(s, a)`` as ``E_{ŝ~P_φ}[V(ŝ)]`` (SPEC §2); ``c = va_loss_coeff`` (0.01). ``V``'s
parameters are frozen inside the loss: gradients reach the model only. The single-step
transitions are all ``n_step × batch`` real ``(s_i, a_i, s'_i)`` of the multi-step batch
(masks only matter for the multi-step unroll).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from slbo.loss.multi_step_loss import MultiStepLoss
from vaml_ext.losses import expected_value_deterministic, frozen, make_loss, model_advantage

import vaml_ext.slbo.losses  # noqa: F401  (registers "slbo")

SLBO_MODEL_LOSSES = ("slbo", "mle", "ma_l1", "ma_vaml", "mle_va_slbo")


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


class RegistryModelLoss(MultiStepLoss):
    def __init__(self, model, normalizers, dim_state, dim_action, criterion, step, loss_name: str = "slbo",
                 vfn=None, va_loss_coeff: Optional[float] = None):
        super().__init__(model, normalizers, dim_state, dim_action, criterion, step)
        if loss_name not in SLBO_MODEL_LOSSES:
            # get the registry's error message for unknown names, ours for known-but-unsupported
            make_loss(loss_name, key="vaml.model_loss")
            raise ValueError(f"vaml.model_loss={loss_name!r} is registered but not supported by SLBO; "
                             f"valid: {', '.join(SLBO_MODEL_LOSSES)}")
        kwargs = {}
        self.loss_name = loss_name
        cls_value_aware = loss_name in ("ma_l1", "ma_vaml")
        if cls_value_aware:
            if vfn is None:
                raise ValueError(f"vaml.model_loss={loss_name!r} needs the TRPO value function")
            if va_loss_coeff is not None:
                kwargs["coeff"] = va_loss_coeff
        self.objective = make_loss(loss_name, key="vaml.model_loss", **kwargs)
        self.value_aware = bool(self.objective.value_aware)
        self.__dict__["_vfn"] = vfn

    # -- per-transition quantities -------------------------------------------------------
    def _single_step(self, states, next_states_, actions):
        s = _t(states).reshape(-1, self.dim_state)
        a = _t(actions).reshape(-1, self.dim_action)
        s_next = _t(next_states_).reshape(-1, self.dim_state)
        return s, a, s_next, self._model(s, a)

    def model_advantage(self, states, next_states_, actions) -> torch.Tensor:
        """``A_i = V(s'_i) - V(f_φ(s_i, a_i))`` (paper Eq. 9, deterministic model); grads to φ only."""
        s, a, s_next, pred = self._single_step(states, next_states_, actions)
        with torch.no_grad():
            v_next = self._vfn(s_next)
        with frozen([self._vfn]):
            v_pred = expected_value_deterministic(pred, self._vfn)
        return model_advantage(v_next, v_pred)

    def mle_va_slbo_sq_err(self, states, next_states_, actions) -> torch.Tensor:
        """The authors' MLE per transition (va_slbo ``mle_loss.py`` l.61-64, bug included):
        ``Σ_j (s + f_φ(s, a) - s')_j²`` on raw states, ``f_φ(s, a)`` being already ``s + Δ̂``."""
        s, a, s_next, pred = self._single_step(states, next_states_, actions)
        return (s + pred - s_next).pow(2).sum(-1)

    def training_loss(self, states, next_states_, actions, masks) -> torch.Tensor:
        if self.loss_name == "slbo":
            per_sample = self.forward(_t(states), _t(actions), _t(next_states_), _t(masks))
            return self.objective(multi_step_sq_err=per_sample)
        if self.loss_name == "mle":
            s, a, s_next, pred = self._single_step(states, next_states_, actions)
            err = (pred - s_next) / self._normalizers.diff.op_std.clamp_min(1e-6)
            return self.objective(nll=err.pow(2).mean(-1))
        if "mle_va_slbo_sq_err" in self.objective.in_keys:  # registry entry mle_va_slbo
            return self.objective(mle_va_slbo_sq_err=self.mle_va_slbo_sq_err(states, next_states_, actions))
        return self.objective(advantage=self.model_advantage(states, next_states_, actions))


def make_model_loss(loss_name, model, normalizers, dim_state, dim_action, criterion, step, vfn=None,
                    va_loss_coeff=None) -> RegistryModelLoss:
    """Hook 1: the patched ``main.py`` builds its ``loss_mod`` here."""
    return RegistryModelLoss(model, normalizers, dim_state, dim_action, criterion, step, loss_name=loss_name,
                             vfn=vfn, va_loss_coeff=va_loss_coeff)
