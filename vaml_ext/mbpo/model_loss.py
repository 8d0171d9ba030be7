"""Value-aware model update for mbrl-lib's Gaussian ensemble (paper Eq. 9-10).

Replaces ``OneDimTransitionRewardModel.update`` (through ``ModelTrainer(update_fn=)``)
when ``overrides.model_loss`` names a value-aware loss of the shared registry.

Per batch, for every ensemble member e and transition (s, a, r, s'):

1. the member predicts ``N(μ, σ²)`` over ``[Δs, r]`` (raw, un-normalised target space,
   as upstream's ``target_is_delta``);
2. ``k = va_samples`` reparameterised samples ``(Δŝ, r̂) = μ + σ ε`` give next states
   ``ŝ = s + Δŝ`` in raw observation space;
3. ``A = V(s') − (1/k) Σ V(ŝ)`` (paper Eq. 9; ``V`` from :mod:`vaml_ext.mbpo.values`
   by ``va_value``: the default ``q1`` is this project's common-random-numbers variant,
   one action draw shared by ``s'`` and ``ŝ``; ``q1_indep`` is the authors' estimator,
   independent draws, va_mbpo gaussian_mlp.py l.352-374; agent parameters frozen);
4. loss = ``va_loss_coeff · Σ_{e,b} |A|`` (``ma_l1``, Eq. 10; ``A²`` for ``ma_vaml``)
   ``+ Σ_{e,b} (r̂ − r)²`` -- the reduction of the authors' code (va_mbpo
   gaussian_mlp.py l.389-396; :attr:`ModelLoss.reduction` ``"sum"``); the
   reward head keeps a regression loss (the paper assumes a known/learned reward).
   ``va_reduction=mean`` uses per-member means instead (summed over members, as
   upstream's Gaussian NLL). The reduction matters although Adam is scale-invariant:
   Adam's weight decay and the gradient clip are not (measured: exp/mbpo/README.md).

The gradient norm is clipped at ``va_grad_clip`` (paper code: 2.0). A non-finite loss
raises :class:`NonFiniteModelLoss` before the optimiser step, so the model and the
last saved checkpoint stay intact.
"""

from __future__ import annotations

from typing import Any

import torch

from vaml_ext.checks import check_choice
from vaml_ext.losses import ModelLoss, frozen, make_loss, model_advantage
from vaml_ext.mbpo.values import agent_modules, make_estimator

#: "sum" (the authors' code, the default) or "mean": the shared registry's reductions
REDUCTIONS = ModelLoss.REDUCTIONS


class NonFiniteModelLoss(FloatingPointError):
    """A value-aware model loss became NaN/inf; training stops before the step."""


def require_delta_targets(dyn_model, who: str) -> None:
    """Value-aware losses build next states as ``s + Δ``: the model must predict every
    state dimension as a difference."""
    if not dyn_model.target_is_delta or dyn_model.no_delta_list:
        raise ValueError(f"{who} need target_is_delta=true without no_delta_list")


def member_outputs(dyn_model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, logvar, obs, target) with an ensemble dimension ``[E, B, ·]``."""
    model_in, target = dyn_model._process_batch(batch)
    if model_in.ndim == 2:
        model_in, target = model_in.unsqueeze(0), target.unsqueeze(0)
    mean, logvar = dyn_model.model.forward(model_in, use_propagation=False)
    obs = torch.as_tensor(batch.obs, dtype=torch.float32, device=mean.device)
    if obs.ndim == 2:
        obs = obs.unsqueeze(0)
    if target.shape[0] != mean.shape[0]:
        target = target.expand(mean.shape[0], *target.shape[1:])
        obs = obs.expand(mean.shape[0], *obs.shape[1:])
    return mean, logvar, obs, target


def value_aware_terms(
    dyn_model,
    batch,
    estimator,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Model advantage and reward error per member and transition (``[E, B]`` each).

    ``estimator(true_next [N, d], pred_next [k, N, d], generator) -> (V(s') [N],
    V(ŝ) [k, N])`` (see :mod:`vaml_ext.mbpo.values`).
    """
    require_delta_targets(dyn_model, "value-aware MBPO losses")
    mean, logvar, obs, target = member_outputs(dyn_model, batch)
    if logvar is None:  # deterministic model: E[V(ŝ)] = V(prediction) (Eq. 10)
        samples = mean.unsqueeze(0)
    else:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((num_samples,) + tuple(mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
        samples = mean.unsqueeze(0) + std.unsqueeze(0) * eps  # [k, E, B, out]
    obs_dim = obs.shape[-1]
    pred_next = obs.unsqueeze(0) + samples[..., :obs_dim]
    true_next = obs + target[..., :obs_dim]
    k, E, B = pred_next.shape[:3]
    v_true, v_pred = estimator(true_next.reshape(E * B, obs_dim), pred_next.reshape(k, E * B, obs_dim), generator)
    out = {"advantage": model_advantage(v_true.reshape(E, B), v_pred.reshape(k, E, B).mean(0))}
    if dyn_model.learned_rewards:
        out["reward_sq_err"] = (samples[..., obs_dim] - target[..., obs_dim]).pow(2).mean(0)
    return out


class ValueAwareModelUpdate:
    """``update(batch, optimizer) -> (loss, meta)`` for ``ModelTrainer(update_fn=...)``."""

    def __init__(
        self,
        ctx,
        loss_name: str,
        coeff: float,
        value: str = "q1",
        num_samples: int = 1,
        grad_clip: float | None = 2.0,
        seed: int = 0,
        reduction: str = "sum",
    ):
        check_choice("overrides.va_reduction", reduction, REDUCTIONS)
        self.reduction = reduction
        self.ctx = ctx
        self.loss_name = loss_name
        self.loss_fn = make_loss(loss_name, coeff=coeff, reduction=reduction)
        if not self.loss_fn.value_aware or self.loss_fn.needs_trajectories:
            raise ValueError(f"model_loss={loss_name!r} cannot be used per transition in MBPO")
        self.value = value
        self.num_samples = int(num_samples)
        self.grad_clip = grad_clip
        device = ctx.dynamics_model.device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed) + 7919)
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue bit-identically (vaml_ext.mbpo.checkpoint)."""
        return {"generator": self.generator.get_state(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.steps = state["steps"]

    def __call__(self, batch, optimizer) -> tuple[float, dict[str, Any]]:
        dyn = self.ctx.dynamics_model
        sac = self.ctx.agent.sac_agent
        estimator = make_estimator(self.value, sac)
        dyn.train()
        optimizer.zero_grad()
        with frozen(agent_modules(sac)):
            terms = value_aware_terms(dyn, batch, estimator, self.num_samples, self.generator)
        adv = terms["advantage"]
        # "sum" (paper's MBPO code): coeff·Σ|A| + Σ(r̂−r)² over members and transitions;
        # "mean": per-member means, summed over members (upstream NLL's convention):
        # every member sees the same B transitions, so Σ_e mean_b = E · mean_{e,b}.
        va = self.loss_fn(advantage=adv)
        if self.reduction == "mean":
            va = adv.shape[0] * va
        loss = va
        reward = torch.zeros((), device=va.device)
        if "reward_sq_err" in terms:
            err = terms["reward_sq_err"]
            reward = err.sum() if self.reduction == "sum" else err.mean(-1).sum()
            loss = loss + reward
        if not torch.isfinite(loss):
            raise NonFiniteModelLoss(
                f"model_loss={self.loss_name} is {loss.item()} at env step {self.ctx.env_steps} "
                f"(model update {self.steps}); stopping before the optimiser step. The last saved "
                "model and agent checkpoints are intact."
            )
        loss.backward()
        params = [p for p in dyn.parameters() if p.grad is not None]
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            if self.grad_clip
            else torch.norm(torch.stack([p.grad.norm() for p in params]))
        )
        optimizer.step()
        self.steps += 1
        return loss.item(), {
            "va_loss": va.item(),
            "reward_loss": reward.item(),
            "mean_abs_advantage": terms["advantage"].abs().mean().item(),
            "grad_norm": float(grad_norm),
        }
