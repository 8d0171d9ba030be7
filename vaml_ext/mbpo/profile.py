"""``overrides.profile``: one switch for what the authors' MBPO code did.

* ``current`` (default) -- this project's settings, each key as configured.
* ``paper`` -- the authors' fork (GitHub ``nirbhayjm/va_mbpo``, commit 203ea3e):

  =========================== ============ ==================================================
  key                         paper value  where the authors' code does it
  =========================== ============ ==================================================
  ``va_value``                ``q1_indep`` ``mbrl/models/gaussian_mlp.py`` l.352-374
  ``value_refit_mode``        ``authors``  ``mbrl/models/model_trainer.py`` l.151-204
  ``value_refit_batch_size``  50000        ``mbrl/algorithms/mbpo.py`` l.244
  ``sac_grad_clip``           2.0          ``mbrl/third_party/pytorch_sac/agent/sac.py`` l.137, l.158
  ``va_loss_coeff``           0.01         ``…/gaussian_mlp_ensemble.yaml`` l.12
  ``value_update_interval``   5            ``mbrl/algorithms/mbpo.py`` l.197
  ``num_value_updates``       5            ``mbrl/algorithms/mbpo.py`` l.245-247
  ``va_samples``              1            ``gaussian_mlp.py`` l.340 (one ``rsample``)
  ``va_grad_clip``            2.0          ``mbrl/models/model.py`` l.178
  ``va_reduction``            ``sum``      ``gaussian_mlp.py`` l.389-396
  =========================== ============ ==================================================

A key left at its ``current`` default takes the paper value; a key set to anything
else than its default or its paper value is a conflict and fails validation, naming
the key. Upstream hyper-parameters (the override files) are never changed: the SAC
gradient clip is installed on the agent's optimisers through the plugin seam
(:class:`SacGradClip`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from mbrl.util.plugins import Callback

PROFILES = ("current", "paper")
REFIT_MODES = ("separate", "authors")

PAPER: Dict[str, Any] = {
    "va_value": "q1_indep",
    "value_refit_mode": "authors",
    "value_refit_batch_size": 50000,
    "sac_grad_clip": 2.0,
    "va_loss_coeff": 0.01,
    "value_update_interval": 5,
    "num_value_updates": 5,
    "va_samples": 1,
    "va_grad_clip": 2.0,
    "va_reduction": "sum",
}


def effective(o, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """The settings a run uses: ``o`` (``cfg.overrides``) with the profile applied.

    ``defaults`` are the plugin's ``config_defaults``. Raises ``ValueError`` naming the
    key on an unknown profile or on a key that conflicts with the profile.
    """
    profile = o.get("profile", "current")
    if profile not in PROFILES:
        raise ValueError(f"overrides.profile={profile!r} is invalid: expected one of {', '.join(PROFILES)}")
    out = {k: o.get(k, defaults.get(k)) for k in defaults}
    if profile == "paper":
        for key, paper_value in PAPER.items():
            value = o.get(key, defaults[key])
            if value == paper_value or value == defaults[key]:
                out[key] = paper_value
            else:
                raise ValueError(
                    f"overrides.{key}={value!r} conflicts with overrides.profile=paper, which sets "
                    f"{key}={paper_value!r} (the authors' code); drop the override or use profile=current"
                )
    return out


class SacGradClip(Callback):
    """Clip the SAC critic's and actor's gradient norms before every optimiser step
    (the authors' ``clip_grad_norm_(…, 2.0)``, va_mbpo pytorch_sac/agent/sac.py l.137
    and l.158), installed as optimiser step pre-hooks so no upstream code changes.

    Applies to every step of those optimisers: SAC's own updates and the refit's.
    """

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)
        self._handles: List[Any] = []
        self.clipped_steps = 0

    def install(self, agent) -> None:
        from vaml_ext.mbpo.agents import adapter_for

        self.remove()
        ag = adapter_for(agent)
        for opt, module in ((ag.critic_optimizer, ag.critic), (ag.actor_optimizer, ag.actor)):
            self._handles.append(opt.register_step_pre_hook(self._hook(module)))

    def _hook(self, module: torch.nn.Module):
        def pre_step(optimizer, args, kwargs) -> Optional[Any]:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.max_norm)
            self.clipped_steps += 1
            return None

        return pre_step

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def on_train_begin(self, ctx):
        self.install(ctx.agent)

    def on_train_end(self, ctx):
        self.remove()
