"""VaGraM as an MBPO model loss: ``overrides.model_loss=vagram``.

Voelcker et al., "Value Gradient weighted Model-Based Reinforcement Learning" (ICLR 2022),
code ``pairlab/vagram`` (an mbrl-lib fork): ``mbrl/models/vaml_mlp.py`` ``VAMLMLP``, driven by
``mbrl/algorithms/mbpo.py``. Per batch, for every ensemble member and transition
``(s, a, r, s')`` (the member's own bootstrap rows):

1. ``g_h = ∇_x Q_h(x, μ(x))`` at ``x = s'`` for the four value heads the authors average
   (``use_all_vf: true``: Q1, Q2 of the critic and of the target critic, ``vaml_mlp.py``
   ``values``), the action the policy's mean, *held fixed* (``next_action.detach()``), the
   agent's parameters frozen;
2. ``g_h`` clipped to the batch's ``vagram_clip_quantile`` quantile of ``‖g_h‖`` per head
   (``bound_clipping: true``, ``bound_clipping_quantile: 0.95``,
   ``conf/dynamics_model/vaml_ensemble.yaml``; ``null`` = no clipping);
3. loss = ``mean_{e,b} [ mean_d (1/H) Σ_h (g_{h,d} (ŝ'_d − s'_d))² + (r̂ − r)² ]``
   (:class:`vaml_ext.losses.VaGraMLoss`; ``vagram_bounded=false``: the Taylor form
   ``(g_h · (ŝ' − s'))²``) -- plus, while the critic is untrained (env steps before the
   first ``epoch_length``), the MSE of all outputs (the authors' ``add_mse`` for the
   first epoch, ``mbpo.py`` l.199-203 and l.323-324);
4. no gradient clip, no stale-value refit: the weights are recomputed with the current
   critic at every model-training call (the authors' ``set_gradient_buffer`` and
   ``set_agent`` before each, ``mbpo.py`` l.246-249).

Validation (so the elites, ``ModelTrainer._maybe_set_best_weights_and_elite``) is scored
with the same loss, as the authors' ``VAMLMLP.eval_score`` does.

``vagram_mode`` chooses between the corrected loss (default, above) and what the
published code computed:

* ``published`` takes the gradient at the *state difference* ``s' − s`` (the model's
  target): ``values(target[..., :-1])`` before the authors' commit 5747785 "Fix gradient
  calculation offset error", the code of the paper's runs;
* it reuses ensemble member 0's gradients for every member from the second epoch of each
  training call on (``self.gradients[idx, i] = g[0]``, looked up by the batch's positions;
  members draw other bootstrap rows at those positions, so member ``e > 0`` is weighted by
  the gradients of member 0's transitions);
* validation batches, once a training epoch has run, are weighted with training
  gradients (``known_eval_gradients`` is never set, so ``eval_score`` falls back to
  ``self.gradients[idx]``, the cache of *training* transitions at the same positions).
  Emulated in distribution: member 0's gradients of the last training batch, row by row.

The model must be deterministic, as the authors' ``VAMLMLP`` (``deterministic=True``):
``dynamics_model.deterministic=true``.
"""

from __future__ import annotations

from typing import Any

import torch
from mbrl.util.plugins import Callback

from vaml_ext.checks import check_choice
from vaml_ext.losses import frozen, make_loss
from vaml_ext.mbpo.agents import AgentAdapter, adapter_for
from vaml_ext.mbpo.model_loss import NonFiniteModelLoss, member_outputs, require_delta_targets

MODES = ("corrected", "published")


def value_gradients(adapter: AgentAdapter, points: torch.Tensor, target_heads: bool = True) -> torch.Tensor:
    """``[H, *points.shape]``: ``∇_x Q_h(x, μ(x))`` per value head, the action held fixed.

    ``points`` is ``[..., d]``; the agent's parameters get no gradient."""
    flat = points.detach().reshape(-1, points.shape[-1]).requires_grad_(True)
    with torch.enable_grad(), frozen(adapter.modules()):
        action = adapter.mean_action(flat).detach()
        heads = adapter.q_heads(flat, action, target_heads)
        grads = [
            torch.autograd.grad(heads[h].sum(), flat, retain_graph=h < heads.shape[0] - 1)[0]
            for h in range(heads.shape[0])
        ]
    return torch.stack(grads, 0).reshape(len(grads), *points.shape)


def clip_to_quantile(g: torch.Tensor, quantile: float | None) -> torch.Tensor:
    """Rescale rows of ``g`` (``[H, ..., d]``) whose norm reaches the ``quantile`` of the
    head's row norms down to that norm (``vaml_mlp.py``: ``np.quantile(norms, q)``, linear
    interpolation, then ``where(norms < bound, g, bound / norms * g)``)."""
    if quantile is None:
        return g
    flat = g.reshape(g.shape[0], -1, g.shape[-1])
    norms = flat.norm(dim=-1)  # [H, N]
    bound = torch.quantile(norms, float(quantile), dim=1, keepdim=True)
    scaled = flat * (bound / norms.clamp_min(torch.finfo(norms.dtype).tiny)).unsqueeze(-1)
    return torch.where((norms < bound).unsqueeze(-1), flat, scaled).reshape(g.shape)


class VaGraMModelUpdate(Callback):
    """``update(batch, optimizer) -> (loss, meta)`` and ``eval_score(batch)`` for
    ``ModelTrainer``; also a training-loop callback (it tracks the epoch of each
    training call, which the published mode needs)."""

    def __init__(
        self,
        ctx,
        coeff: float = 1.0,
        bounded: bool = True,
        mode: str = "corrected",
        clip_quantile: float | None = 0.95,
        target_heads: bool = True,
        warmup_steps: int | None = None,
    ):
        check_choice("overrides.vagram_mode", mode, MODES)
        self.ctx = ctx
        self.loss_fn = make_loss("vagram", coeff=coeff, bounded=bounded)
        self.mode = mode
        self.clip_quantile = clip_quantile
        self.target_heads = bool(target_heads)
        epoch_length = ctx.cfg.overrides.get("epoch_length", 0) if ctx.cfg is not None else 0
        self.warmup_steps = int(epoch_length if warmup_steps is None else warmup_steps)
        self.adapter = adapter_for(ctx.agent)
        self.steps = 0
        self._first_epoch = True
        self._last_member0: torch.Tensor | None = None

    # -- the training call's epochs (published mode) -----------------------------------
    def on_model_train_begin(self, ctx) -> None:
        self._first_epoch = True
        self._last_member0 = None

    def on_model_batch(self, ctx, epoch: int, loss: Any, meta: Any, mode: str) -> None:
        if mode == "eval":  # ModelTrainer scores validation after each training epoch
            self._first_epoch = False

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])

    # -- the loss ------------------------------------------------------------------------
    def _weights(self, obs: torch.Tensor, target: torch.Tensor, shared: bool, train: bool) -> torch.Tensor:
        """``[H, E, B, d]`` value-gradient weights for the batch."""
        d = obs.shape[-1]
        published = self.mode == "published"
        point = target[..., :d] if published else obs + target[..., :d]
        E = obs.shape[0]
        if not train and published and self._last_member0 is not None:
            cached = self._last_member0  # [H, B', d], already clipped
            rows = torch.arange(obs.shape[1], device=cached.device) % cached.shape[1]
            return cached[:, rows].unsqueeze(1).expand(-1, E, -1, -1)
        if shared or (published and train and not self._first_epoch):
            # one set of rows for every member: a validation batch (no bootstrap), or the
            # published code's member-0 cache
            g = clip_to_quantile(value_gradients(self.adapter, point[0], self.target_heads), self.clip_quantile)
            g = g.unsqueeze(1).expand(-1, E, -1, -1)
        else:
            g = clip_to_quantile(value_gradients(self.adapter, point, self.target_heads), self.clip_quantile)
        if published and train:
            self._last_member0 = g[:, 0].detach()
        return g

    def terms(self, batch, train: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Per-member, per-transition loss terms (``[E, B]`` each) and the weights."""
        dyn = self.ctx.dynamics_model
        require_delta_targets(dyn, "model_loss=vagram's weights and errors")
        shared = batch.obs.ndim == 2
        mean, logvar, obs, target = member_outputs(dyn, batch)
        if logvar is not None:
            raise ValueError(
                "model_loss=vagram trains a deterministic model, as the authors' VAMLMLP; "
                "add dynamics_model.deterministic=true"
            )
        d = obs.shape[-1]
        g = self._weights(obs, target, shared, train)
        err = mean[..., :d] - target[..., :d]  # ŝ' − s' (both are s + Δ)
        out = {"vagram": self.loss_fn.coeff * self.loss_fn.per_transition(err, g)}
        if dyn.learned_rewards:
            out["reward_sq_err"] = (mean[..., d] - target[..., d]).pow(2)
        if self.ctx.env_steps < self.warmup_steps:
            out["mse_warmup"] = (mean - target).pow(2).mean(-1)
        return out, g

    def __call__(self, batch, optimizer) -> tuple[float, dict[str, Any]]:
        dyn = self.ctx.dynamics_model
        dyn.train()
        optimizer.zero_grad()
        terms, g = self.terms(batch, train=True)
        loss = torch.stack([t.mean() for t in terms.values()]).sum()
        if not torch.isfinite(loss):
            raise NonFiniteModelLoss(
                f"model_loss=vagram is {loss.item()} at env step {self.ctx.env_steps} (model update "
                f"{self.steps}); stopping before the optimiser step. The last saved model and agent "
                "checkpoints are intact."
            )
        loss.backward()
        optimizer.step()
        self.steps += 1
        return loss.item(), {
            "va_loss": terms["vagram"].mean().item(),
            "reward_loss": terms["reward_sq_err"].mean().item() if "reward_sq_err" in terms else 0.0,
            "mse_warmup": terms["mse_warmup"].mean().item() if "mse_warmup" in terms else 0.0,
            "value_grad_norm": g.norm(dim=-1).mean().item(),
        }

    def eval_score(self, batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """``[E, B, 1]`` per-transition loss of every member (for validation and elites)."""
        with torch.no_grad():
            terms, _ = self.terms(batch, train=False)
        return torch.stack(list(terms.values())).sum(0).unsqueeze(-1), {}
