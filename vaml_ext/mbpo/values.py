"""Value estimators over mbrl-lib's SAC agent (``pytorch_sac_pranz24.SAC``), by name.

``V`` in the model advantage ``A = V(s') − E_ŝ[V(ŝ)]`` (paper Eq. 9-10) is the agent's
critic. An estimator maps the real next states ``s'`` ``[N, d]`` and the model's
samples ``ŝ`` ``[k, N, d]`` to ``(V(s') [N], V(ŝ) [k, N])``. Both sides use **one**
action draw per transition (common random numbers), so ``A`` measures the state
difference, not policy-sampling noise: with independent draws, ``|A|`` has a floor
set by the policy's entropy even for a perfect model, and the sign of ``A`` -- hence
the ``ma_l1`` gradient -- is mostly noise while the policy is broad.

* ``q1`` (default) -- the value of the paper's MBPO code, the online ``Q1``
  (``va_mbpo`` ``mbrl/models/gaussian_mlp.py`` l. 336-381, which draws an independent
  action on each side), here at one action ``a ~ π(·|s')`` used on both sides,
  ``A = Q1(s', a) − Q1(ŝ, a)``.
* ``soft`` -- SAC's soft state value ``V(x) = min(Q1, Q2)(x, a_x) − α log π(a_x|x)``
  with ``a_x = tanh(μ(x) + σ(x) ε)·scale + bias`` for the same ``ε`` at ``x = s'`` and
  ``x = ŝ``. Principled, less optimistic than one Q head; offered for comparison.

Both run with the agent's parameters frozen (:func:`vaml_ext.losses.frozen`): gradients
reach the model through ``ŝ`` (and, for ``soft``, through ``a_ŝ``) but never the agent.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

VALUE_ESTIMATORS = ("q1", "soft")
_EPS = 1e-6  # as pytorch_sac_pranz24's tanh-squash correction

Estimator = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Generator]], Tuple[torch.Tensor, torch.Tensor]]


def _alpha(sac):
    a = sac.alpha
    return a.detach() if isinstance(a, torch.Tensor) else float(a)


def squashed_action(policy, states: torch.Tensor, eps: torch.Tensor):
    """``(a, log π(a|s))`` of the tanh-Gaussian policy for given standard-normal ``eps``."""
    mean, log_std = policy(states)
    x = mean + log_std.exp() * eps
    y = torch.tanh(x)
    action = y * policy.action_scale + policy.action_bias
    normal_logp = -0.5 * eps.pow(2) - log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
    logp = (normal_logp - torch.log(policy.action_scale * (1 - y.pow(2)) + _EPS)).sum(-1, keepdim=True)
    return action, logp


def _noise(sac, n: int, like: torch.Tensor, generator) -> torch.Tensor:
    act_dim = sac.policy.mean_linear.out_features
    return torch.randn((n, act_dim), generator=generator, device=like.device, dtype=like.dtype)


def critic_q1(critic, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``critic(states, actions)[0]`` without computing the unused Q2 head.

    For pytorch_sac_pranz24's ``QNetwork`` (``model.py``: ``xu = cat[s, a]``, Q1 =
    ``linear3(relu(linear2(relu(linear1(xu)))))``) the Q1 ops are run alone -- the same
    kernels on the same rows, so the values (and the gradient through ``states``) are
    bit-identical while the Q2 forward, half of the critic's cost, is skipped. Any other
    critic is called as is.
    """
    if type(critic).__name__ == "QNetwork" and all(hasattr(critic, f"linear{i}") for i in (1, 2, 3, 4)):
        x1 = F.relu(critic.linear1(torch.cat([states, actions], 1)))
        x1 = F.relu(critic.linear2(x1))
        return critic.linear3(x1)
    return critic(states, actions)[0]


def q1_estimator(sac) -> Estimator:
    def est(true_next, pred_next, generator=None):
        k, n, d = pred_next.shape
        with torch.no_grad():
            action, _ = squashed_action(sac.policy, true_next, _noise(sac, n, true_next, generator))
            v_true = critic_q1(sac.critic, true_next, action).squeeze(-1)
        a_rep = action.unsqueeze(0).expand(k, n, action.shape[-1]).reshape(k * n, -1)
        v_pred = critic_q1(sac.critic, pred_next.reshape(k * n, d), a_rep).reshape(k, n)
        return v_true, v_pred

    return est


def soft_estimator(sac) -> Estimator:
    def value(states, eps):
        action, logp = squashed_action(sac.policy, states, eps)
        q1, q2 = sac.critic(states, action)
        return (torch.min(q1, q2) - _alpha(sac) * logp).squeeze(-1)

    def est(true_next, pred_next, generator=None):
        k, n, d = pred_next.shape
        eps = _noise(sac, n, true_next, generator)
        with torch.no_grad():
            v_true = value(true_next, eps)
        eps_rep = eps.unsqueeze(0).expand(k, n, eps.shape[-1]).reshape(k * n, -1)
        v_pred = value(pred_next.reshape(k * n, d), eps_rep).reshape(k, n)
        return v_true, v_pred

    return est


_ESTIMATORS: Dict[str, Callable] = {"q1": q1_estimator, "soft": soft_estimator}


def make_estimator(name: str, sac) -> Estimator:
    """The estimator ``name`` over ``sac``; inputs are cast to the critic's device/dtype."""
    if name not in _ESTIMATORS:
        raise ValueError(f"overrides.va_value={name!r} is not one of {', '.join(VALUE_ESTIMATORS)}")
    inner = _ESTIMATORS[name](sac)
    device = next(sac.critic.parameters()).device

    def est(true_next, pred_next, generator=None):
        return inner(true_next.to(device=device, dtype=torch.float32),
                     pred_next.to(device=device, dtype=torch.float32), generator)

    return est


def agent_modules(sac):
    """All modules of the SAC agent whose parameters a model update must not change."""
    return [sac.critic, sac.critic_target, sac.policy]
