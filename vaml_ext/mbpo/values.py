"""Value estimators over mbrl-lib's SAC agent (``pytorch_sac_pranz24.SAC``), by name.

``V`` in the model advantage ``A = V(s') - E_ŝ[V(ŝ)]`` (paper Eq. 9-10) is the agent's
critic. Two choices (``overrides.va_value``):

* ``q1`` (default) -- what the paper's MBPO code did: the *online* ``Q1`` at one
  action sampled from the current policy, ``V(s) ≈ Q1(s, a), a ~ π(·|s)``. It is the
  reference behaviour the paper's MBPO numbers were produced with, hence the default.
* ``soft`` -- the soft state value SAC itself bootstraps with,
  ``V(s) = E_a[min(Q1, Q2)(s, a) − α log π(a|s)]`` (one sample). Principled, and less
  optimistic than a single Q head; offered for comparison.

Both are evaluated with the critic's and the policy's parameters frozen: gradients
reach the model (through reparameterised next-state samples ŝ, and through the
reparameterised action a ~ π(·|ŝ)) but never the agent.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch

VALUE_ESTIMATORS = ("q1", "soft")


def _alpha(sac) -> torch.Tensor | float:
    a = sac.alpha
    return a.detach() if isinstance(a, torch.Tensor) else float(a)


def q1_value(sac, states: torch.Tensor) -> torch.Tensor:
    """``Q1(s, a)``, ``a ~ π(·|s)`` sampled once (paper's MBPO code)."""
    action, _, _ = sac.policy.sample(states)
    q1, _ = sac.critic(states, action)
    return q1.squeeze(-1)


def soft_value(sac, states: torch.Tensor) -> torch.Tensor:
    """``min(Q1, Q2)(s, a) − α log π(a|s)``, ``a ~ π(·|s)`` sampled once."""
    action, log_pi, _ = sac.policy.sample(states)
    q1, q2 = sac.critic(states, action)
    return (torch.min(q1, q2) - _alpha(sac) * log_pi).squeeze(-1)


_FNS: Dict[str, Callable] = {"q1": q1_value, "soft": soft_value}


def make_value_fn(name: str, sac) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``states [N, d] -> values [N]`` for the estimator ``name``."""
    if name not in _FNS:
        raise ValueError(f"overrides.va_value={name!r} is not one of {', '.join(VALUE_ESTIMATORS)}")
    fn = _FNS[name]
    device = next(sac.critic.parameters()).device

    def value(states: torch.Tensor) -> torch.Tensor:
        return fn(sac, states.to(device=device, dtype=torch.float32))

    return value


def agent_modules(sac):
    """All modules of the SAC agent whose parameters a model update must not change."""
    mods = [sac.critic, sac.critic_target, sac.policy]
    return mods
