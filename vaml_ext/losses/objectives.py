"""The model-learning objectives of the paper, registered by name.

Notation (paper Eq. 8-10): ``A(s, a, s') = V(s') - E_{ŝ~P_φ(·|s,a)}[V(ŝ)]`` is the
per-transition model advantage (γ folded into the coefficient). ``advantage`` tensors
carry gradients to the model parameters φ only: the value function is evaluated
under ``torch.no_grad`` / with detached parameters by the estimators in
:mod:`vaml_ext.losses.estimators`.
"""

from __future__ import annotations

import torch

from vaml_ext.losses.base import ModelLoss
from vaml_ext.losses.registry import register_loss

#: The paper's one new hyper-parameter (fixed across environments).
DEFAULT_VA_LOSS_COEFF = 0.01


@register_loss("mle")
class MLELoss(ModelLoss):
    """Maximum likelihood: mean per-transition negative log-likelihood ``nll``.

    ``nll`` is whatever the framework's upstream model loss is per transition (mbrl-lib:
    Gaussian NLL; SLBO ablation: squared error of the next-state prediction; gridworld:
    categorical cross-entropy). Frameworks whose upstream loss is already a scalar may
    call it directly: this entry exists so ``mle`` is a valid name everywhere.
    """

    value_aware = False
    in_keys = ("nll",)

    def _loss(self, nll: torch.Tensor, mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        return self.reduce(nll, mask)


@register_loss("ma_l1")
class MAL1Loss(ModelLoss):
    """MA Upper Bound L1 (paper Eq. 10): ``mean_i |A(s_i, a_i, s'_i)|``.

    An upper bound of the direct objective ``ma_direct_l1`` by the triangle inequality.
    """

    value_aware = True
    takes_refit = True  # Algorithm 2
    in_keys = ("advantage",)
    default_coeff = DEFAULT_VA_LOSS_COEFF

    def _loss(self, advantage: torch.Tensor, mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        return self.reduce(advantage.abs(), mask)


@register_loss("ma_vaml")
class MAVAMLLoss(ModelLoss):
    """MA-VAML L2 (IterVAML-style, paper §4): ``mean_i A(s_i, a_i, s'_i)^2``.

    Note: unlike ``ma_l1``, this does *not* upper-bound ``ma_direct_l2``.
    """

    value_aware = True
    takes_refit = True  # Algorithm 2
    in_keys = ("advantage",)
    default_coeff = DEFAULT_VA_LOSS_COEFF

    def _loss(self, advantage: torch.Tensor, mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        return self.reduce(advantage.pow(2), mask)


def _discounted_traj_sums(advantage: torch.Tensor, gamma: float, mask: torch.Tensor | None) -> torch.Tensor:
    """``Σ_t γ^t A_t`` per trajectory (``[m]``) for ``advantage`` of shape ``[m, T]``."""
    if advantage.dim() != 2:
        raise ValueError(
            f"direct model-advantage losses need advantage of shape [num_traj, T], got {tuple(advantage.shape)}"
        )
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma} must lie in [0, 1]")
    t = torch.arange(advantage.shape[1], device=advantage.device, dtype=advantage.dtype)
    disc = torch.pow(torch.as_tensor(gamma, dtype=advantage.dtype, device=advantage.device), t)
    terms = advantage * disc
    if mask is not None:
        terms = terms * mask.to(advantage.dtype)
    return terms.sum(dim=1)


@register_loss("ma_direct_l1")
class MADirectL1Loss(ModelLoss):
    """MA Direct L1 (paper Eq. 8): ``| (1/m) Σ_traj Σ_t γ^t A(s_t, a_t, s_{t+1}) |``.

    Needs whole trajectories: ``advantage`` is ``[num_traj, T]`` with an optional
    ``mask`` (1 for real steps, 0 after the episode ended) and a ``gamma`` input.
    """

    value_aware = True
    takes_refit = True  # Algorithm 2
    needs_trajectories = True
    in_keys = ("advantage",)
    default_coeff = DEFAULT_VA_LOSS_COEFF

    def _loss(
        self, advantage: torch.Tensor, gamma: float = 0.99, mask: torch.Tensor | None = None, **_
    ) -> torch.Tensor:
        return self.reduce(_discounted_traj_sums(advantage, gamma, mask)).abs()


@register_loss("ma_direct_l2")
class MADirectL2Loss(ModelLoss):
    """MA Direct L2: the square of the Eq. 8 trajectory sum."""

    value_aware = True
    takes_refit = True  # Algorithm 2
    needs_trajectories = True
    in_keys = ("advantage",)
    default_coeff = DEFAULT_VA_LOSS_COEFF

    def _loss(
        self, advantage: torch.Tensor, gamma: float = 0.99, mask: torch.Tensor | None = None, **_
    ) -> torch.Tensor:
        return self.reduce(_discounted_traj_sums(advantage, gamma, mask)).pow(2)


@register_loss("vagram")
class VaGraMLoss(ModelLoss):
    """Value-gradient weighted model loss (Voelcker et al., ICLR 2022, "Value Gradient
    weighted Model-Based Reinforcement Learning"; code ``pairlab/vagram``,
    ``mbrl/models/vaml_mlp.py`` ``VAMLMLP._vaml_loss``).

    Inputs: ``error`` ``[..., d]`` = ``ŝ' − s'`` (differentiable in the model) and
    ``value_grad`` ``[H, ..., d]`` = ``∇_s V_h(s')`` for each of ``H`` value heads, treated
    as constants (detached here). Per transition:

    * ``bounded=True`` (the authors' default, ``use_scaling``):
      ``mean_d (1/H) Σ_h (∂_d V_h · e_d)²`` -- the paper's bounded, per-dimension form;
    * ``bounded=False`` (``use_vaml``): ``(1/H) Σ_h (∇V_h · e)²``, the first-order Taylor
      VAML term.

    The reward error and any MSE warm-up are the framework's (``vaml_ext.mbpo.vagram``).
    The coefficient defaults to 1.0: VaGraM's loss has none.
    """

    value_aware = True
    takes_refit = False  # the weights are recomputed with the current critic at each training call
    in_keys = ("error", "value_grad")
    default_coeff = 1.0

    def __init__(self, coeff: float | None = None, reduction: str = "mean", bounded: bool = True):
        super().__init__(coeff, reduction)
        self.bounded = bool(bounded)

    def per_transition(self, error: torch.Tensor, value_grad: torch.Tensor) -> torch.Tensor:
        """The unreduced, unscaled term per transition (shape ``error.shape[:-1]``)."""
        g = value_grad.detach()
        if g.shape[1:] != error.shape:
            raise ValueError(
                f"vagram: value_grad must be [H, *error.shape] = [H, {', '.join(map(str, error.shape))}], "
                f"got {list(g.shape)}"
            )
        weighted = g * error.unsqueeze(0)
        if self.bounded:
            return weighted.pow(2).mean(0).mean(-1)
        return weighted.sum(-1).pow(2).mean(0)

    def _loss(
        self, error: torch.Tensor, value_grad: torch.Tensor, mask: torch.Tensor | None = None, **_
    ) -> torch.Tensor:
        return self.reduce(self.per_transition(error, value_grad), mask)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bounded={self.bounded}"
