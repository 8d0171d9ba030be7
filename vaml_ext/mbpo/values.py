"""Value estimators over the MBPO agent's critic, by name (``overrides.va_value``).

``V`` in the model advantage ``A = V(s') − E_ŝ[V(ŝ)]`` (paper Eq. 9-10) is the agent's
critic. An estimator maps the real next states ``s'`` ``[N, d]`` and the model's
samples ``ŝ`` ``[k, N, d]`` to ``(V(s') [N], V(ŝ) [k, N])``. Both SAC implementations
are served through :mod:`vaml_ext.mbpo.agents` (mbrl 0.2.0's pranz24 ``SAC``,
mbrl 0.2.0.dev3's Yarats ``SACAgent``).

* ``q1_indep`` -- **the authors' estimator** (va_mbpo ``mbrl/models/gaussian_mlp.py``
  l.352-374): the online ``Q1`` at a fresh draw ``a ~ π(·|ŝ)`` at each model sample
  and an independent draw ``a' ~ π(·|s')`` at the real next state, no gradient through
  either action (``.sample()``), ``A = Q1(s', a') − Q1(ŝ, a)``. Selected by
  ``overrides.profile=paper``.
* ``q1`` (default) -- **this project's variant** of it, with common random numbers:
  one draw ``a ~ π(·|s')`` per transition used on both sides, ``A = Q1(s', a) −
  Q1(ŝ, a)``. Why it exists: with independent draws ``|A|`` has a floor set by the
  policy's entropy even for a perfect model (``E|Q1(s',a') − Q1(s',a)| > 0``), and the
  sign of ``A`` -- hence the ``ma_l1`` gradient -- is mostly policy-sampling noise while
  the policy is broad. Sharing the draw removes that noise without changing what is
  measured: the advantage is exactly zero at a perfect model. It is not what the
  authors ran.
* ``soft`` -- SAC's soft state value ``V(x) = min(Q1, Q2)(x, a_x) − α log π(a_x|x)``
  with ``a_x`` the reparameterised policy action for the same noise ``ε`` at ``x = s'``
  and ``x = ŝ``. Principled, less optimistic than one Q head; offered for comparison.

All run with the agent's parameters frozen (:func:`vaml_ext.losses.frozen`): gradients
reach the model through ``ŝ`` (and, for ``soft``, through ``a_ŝ``) but never the agent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaml_ext.mbpo.agents import AgentAdapter, Pranz24SAC, adapter_for, critic_q1  # noqa: F401 (critic_q1 re-exported)

VALUE_ESTIMATORS = ("q1", "q1_indep", "soft")

Estimator = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]


def squashed_action(policy, states: torch.Tensor, eps: torch.Tensor):
    """``(a, log π(a|s))`` of pranz24's tanh-Gaussian ``policy`` for given standard-normal ``eps``."""
    return Pranz24SAC(type("_S", (), {"policy": policy})()).squashed(states, eps)


def q1_estimator(ag: AgentAdapter) -> Estimator:
    """This project's shared-draw (common random numbers) Q1."""

    def est(true_next, pred_next, generator=None):
        k, n, d = pred_next.shape
        with torch.no_grad():
            action, _ = ag.squashed(true_next, ag.noise(n, true_next, generator))
            v_true = ag.q1(true_next, action)
        a_rep = action.unsqueeze(0).expand(k, n, action.shape[-1]).reshape(k * n, -1)
        v_pred = ag.q1(pred_next.reshape(k * n, d), a_rep).reshape(k, n)
        return v_true, v_pred

    return est


def q1_indep_estimator(ag: AgentAdapter) -> Estimator:
    """The authors' Q1 with independent draws at ŝ and s' (va_mbpo gaussian_mlp.py
    l.352-374): ``a ~ π(·|ŝ)`` per model sample, ``a' ~ π(·|s')`` per transition."""

    def est(true_next, pred_next, generator=None):
        k, n, d = pred_next.shape
        flat = pred_next.reshape(k * n, d)
        a_pred = ag.sample_action(flat.detach(), generator)  # l.353: actor(ŝ).sample(), no gradient
        a_true = ag.sample_action(true_next, generator)  # l.367: actor(s').sample()
        with torch.no_grad():
            v_true = ag.q1(true_next, a_true)
        v_pred = ag.q1(flat, a_pred).reshape(k, n)
        return v_true, v_pred

    return est


def soft_estimator(ag: AgentAdapter) -> Estimator:
    def value(states, eps):
        action, logp = ag.squashed(states, eps)
        q1, q2 = ag.critic(states, action)
        return (torch.min(q1, q2) - ag.alpha() * logp).squeeze(-1)

    def est(true_next, pred_next, generator=None):
        k, n, d = pred_next.shape
        eps = ag.noise(n, true_next, generator)
        with torch.no_grad():
            v_true = value(true_next, eps)
        eps_rep = eps.unsqueeze(0).expand(k, n, eps.shape[-1]).reshape(k * n, -1)
        v_pred = value(pred_next.reshape(k * n, d), eps_rep).reshape(k, n)
        return v_true, v_pred

    return est


_ESTIMATORS: dict[str, Callable[[AgentAdapter], Estimator]] = {
    "q1": q1_estimator,
    "q1_indep": q1_indep_estimator,
    "soft": soft_estimator,
}


def make_estimator(name: str, agent) -> Estimator:
    """The estimator ``name`` over ``agent`` (a SAC object, mbrl's wrapper or an
    :class:`AgentAdapter`); inputs are cast to the critic's device and float32."""
    if name not in _ESTIMATORS:
        raise ValueError(f"overrides.va_value={name!r} is not one of {', '.join(VALUE_ESTIMATORS)}")
    ag = agent if isinstance(agent, AgentAdapter) else adapter_for(agent)
    inner = _ESTIMATORS[name](ag)
    device = ag.device

    def est(true_next, pred_next, generator=None):
        return inner(
            true_next.to(device=device, dtype=torch.float32),
            pred_next.to(device=device, dtype=torch.float32),
            generator,
        )

    return est


def agent_modules(agent):
    """All modules of the SAC agent whose parameters a model update must not change."""
    ag = agent if isinstance(agent, AgentAdapter) else adapter_for(agent)
    return ag.modules()
