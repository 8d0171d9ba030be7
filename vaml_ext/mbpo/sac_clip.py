"""``overrides.sac_grad_clip``: the SAC agent's gradient-norm clip, without touching upstream.

The authors' fork clipped the SAC critic's and actor's gradient norms at 2.0 in every SAC
update (va_mbpo ``pytorch_sac/agent/sac.py`` l.137, l.158); ``profile=paper`` sets it
(:mod:`vaml_ext.mbpo.profile`). Installed as optimiser step pre-hooks through the plugin seam.
"""

from __future__ import annotations

from typing import Any

import torch
from mbrl.util.plugins import Callback


class SacGradClip(Callback):
    """Clip the SAC critic's and actor's gradient norms before every optimiser step
    (the authors' ``clip_grad_norm_(…, 2.0)``, va_mbpo pytorch_sac/agent/sac.py l.137
    and l.158), installed as optimiser step pre-hooks so no upstream code changes.

    Applies to every step of those optimisers: SAC's own updates and the refit's.
    """

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)
        self._handles: list[Any] = []
        self.clipped_steps = 0

    def install(self, agent) -> None:
        from vaml_ext.mbpo.agents import adapter_for

        self.remove()
        ag = adapter_for(agent)
        for opt, module in ((ag.critic_optimizer, ag.critic), (ag.actor_optimizer, ag.actor)):
            self._handles.append(opt.register_step_pre_hook(self._hook(module)))

    def _hook(self, module: torch.nn.Module):
        def pre_step(optimizer, args, kwargs) -> Any | None:
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
