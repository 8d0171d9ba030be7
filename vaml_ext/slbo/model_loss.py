"""Model-learning objectives for SLBO chosen by registry name (hook 1 of the patch series).

:class:`RegistryModelLoss` subclasses the port's ``MultiStepLoss`` and replaces only its
*training* objective; optimiser (Adam 1e-3, weight decay 1e-5, global-norm clip 2.0),
batches (``sample_multi_step(128, 1, 2)``) and the logged validation metric (upstream's
multi-step loss) stay upstream's. Which registered losses SLBO accepts follows from
their registry attributes (:func:`supports`): per transition, with inputs SLBO computes.

* ``slbo``    -- the upstream multi-step loss, reduced by the registry (identical values).
* ``mle``     -- "MLE" ablation (paper §5.3: only the MLE term of SLBO's objective):
  single-step squared error of the next state, in units of the state-difference std,
  ``mean_i mean_j ((f_φ(s_i,a_i) - s'_i)_j / σ_Δ,j)²`` over every real transition of the batch.
* ``ma_l1``   -- MA-L1 (paper Eq. 10): ``c · mean_i |V(s'_i) - V(f_φ(s_i, a_i))|``.
* ``ma_vaml`` -- MA-VAML (IterVAML): ``c · mean_i (V(s'_i) - V(f_φ(s_i, a_i)))²``.
* ``mle_va_slbo`` -- the authors' MLE ablation reproduced with its bug (``2 s + Δ̂`` vs
  ``s'`` on raw states, squared error summed over dims; :class:`vaml_ext.slbo.losses.VASLBOMLELoss`).

Value-aware losses use the TRPO value net ``V`` and the deterministic prediction
``f_φ(s, a)`` as ``E_{ŝ~P_φ}[V(ŝ)]`` (paper Eq. 10, deterministic model); ``c =
va_loss_coeff`` (0.01). ``V``'s parameters are frozen inside the loss: gradients reach
the model only. The single-step transitions are all ``n_step × batch`` real
``(s_i, a_i, s'_i)`` of the multi-step batch (masks only matter for the multi-step unroll).
"""

from __future__ import annotations

import numpy as np
import torch

import vaml_ext.slbo.losses  # noqa: F401  (registers "slbo")
from slbo.loss.multi_step_loss import MultiStepLoss
from vaml_ext.losses import (
    available_losses,
    expected_value_deterministic,
    frozen,
    get_loss_class,
    make_loss,
    model_advantage,
)

#: The loss inputs (registry ``ModelLoss.in_keys``) SLBO computes from a multi-step batch:
#: upstream's per-sample multi-step error, the normalised single-step error (MLE
#: ablation), the model advantage per real transition (value-aware losses) and the
#: authors' buggy MLE error (``mle_va_slbo``).
INPUTS = ("multi_step_sq_err", "nll", "advantage", "mle_va_slbo_sq_err")


def supports(cls) -> bool:
    """Whether SLBO can train with registered loss class ``cls``: it is per transition
    (not ``needs_trajectories``) and SLBO computes every one of its ``in_keys``."""
    return not cls.needs_trajectories and bool(cls.in_keys) and set(cls.in_keys) <= set(INPUTS)


def supported_losses() -> list[str]:
    """Registered loss names SLBO can train with (``vaml.model_loss`` values)."""
    return [n for n in available_losses() if supports(get_loss_class(n))]


def _t(x, device=None):
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t if device is None or t.device == device else t.to(device)


class RegistryModelLoss(MultiStepLoss):
    def __init__(
        self,
        model,
        normalizers,
        dim_state,
        dim_action,
        criterion,
        step,
        loss_name: str = "slbo",
        vfn=None,
        va_loss_coeff: float | None = None,
    ):
        super().__init__(model, normalizers, dim_state, dim_action, criterion, step)
        cls = get_loss_class(loss_name, key="vaml.model_loss")  # registry's error for unknown names
        if not supports(cls):
            raise ValueError(
                f"vaml.model_loss={loss_name!r} is registered but not supported by SLBO; "
                f"valid: {', '.join(supported_losses())}"
            )
        kwargs = {}
        self.loss_name = loss_name
        self.value_aware = bool(cls.value_aware)
        if self.value_aware:
            if vfn is None:
                raise ValueError(f"vaml.model_loss={loss_name!r} needs the TRPO value function")
            if va_loss_coeff is not None:
                kwargs["coeff"] = va_loss_coeff
        self.objective = make_loss(loss_name, key="vaml.model_loss", **kwargs)
        self.__dict__["_vfn"] = vfn

    # -- per-transition quantities -------------------------------------------------------
    def _single_step(self, states, next_states_, actions):
        d = next(self._model.parameters()).device
        s = _t(states, d).reshape(-1, self.dim_state)
        a = _t(actions, d).reshape(-1, self.dim_action)
        s_next = _t(next_states_, d).reshape(-1, self.dim_state)
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

    def multi_step_sq_err(self, states, next_states_, actions, masks) -> torch.Tensor:
        """Upstream's per-sample multi-step error (``MultiStepLoss.forward``)."""
        d = next(self._model.parameters()).device
        return self.forward(_t(states, d), _t(actions, d), _t(next_states_, d), _t(masks, d))

    def single_step_sq_err(self, states, next_states_, actions) -> torch.Tensor:
        """Per transition, mean squared next-state error in units of the state-difference std."""
        s, a, s_next, pred = self._single_step(states, next_states_, actions)
        err = (pred - s_next) / self._normalizers.diff.op_std.clamp_min(1e-6)
        return err.pow(2).mean(-1)

    def training_loss(self, states, next_states_, actions, masks) -> torch.Tensor:
        compute = {
            "multi_step_sq_err": lambda: self.multi_step_sq_err(states, next_states_, actions, masks),
            "nll": lambda: self.single_step_sq_err(states, next_states_, actions),
            "advantage": lambda: self.model_advantage(states, next_states_, actions),
            "mle_va_slbo_sq_err": lambda: self.mle_va_slbo_sq_err(states, next_states_, actions),
        }
        return self.objective(**{key: compute[key]() for key in self.objective.in_keys})


def make_model_loss(
    loss_name, model, normalizers, dim_state, dim_action, criterion, step, vfn=None, va_loss_coeff=None
) -> RegistryModelLoss:
    """Hook 1: the patched ``main.py`` builds its ``loss_mod`` here."""
    return RegistryModelLoss(
        model,
        normalizers,
        dim_state,
        dim_action,
        criterion,
        step,
        loss_name=loss_name,
        vfn=vfn,
        va_loss_coeff=va_loss_coeff,
    )
