"""One small adapter per SAC implementation the two pinned mbrl-lib bases ship.

The value estimators (:mod:`vaml_ext.mbpo.values`), both refit modes
(:mod:`vaml_ext.mbpo.refit`, :mod:`vaml_ext.mbpo.refit_authors`) and the paper
profile's SAC gradient clip only talk to an :class:`AgentAdapter`; the adapter is
chosen from the agent's class:

* ``mbrl.third_party.pytorch_sac_pranz24.sac.SAC`` (mbrl 0.2.0's MBPO agent):
  ``policy`` (tanh-Gaussian with ``action_scale``/``action_bias``), ``critic``,
  ``critic_target``, ``critic_optim``, ``policy_optim``, ``alpha`` (fixed float or a
  tensor when tuned), ``gamma``, ``tau``, ``target_update_interval``.
* ``mbrl.third_party.pytorch_sac.agent.sac.SACAgent`` (Yarats' pytorch_sac, the
  agent of mbrl 0.2.0.dev3 and so of the authors' fork ``nirbhayjm/va_mbpo``):
  ``actor`` (returns a ``SquashedNormal``; actions in [-1, 1], no scale/bias),
  ``critic``, ``critic_target``, ``log_alpha`` (``alpha = exp(log_alpha)``),
  ``critic_optimizer``, ``actor_optimizer``, ``log_alpha_optimizer``, ``discount``,
  ``critic_tau``, ``critic_target_update_frequency``, ``batch_size``.

Anything else fails with :class:`UnknownAgentError` naming both known classes.
``adapter_for`` accepts mbrl's planning wrapper (``mbrl.planning.SACAgent``, which
holds the SAC object as ``.sac_agent``) or the SAC object itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_EPS = 1e-6  # pytorch_sac_pranz24's tanh-squash correction


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


class UnknownAgentError(TypeError):
    """The agent's class has no adapter."""


def _normal_logp(eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return -0.5 * eps.pow(2) - log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=eps.dtype))


class AgentAdapter:
    """Uniform view of a SAC agent for model learning and critic-only refits."""

    kind = ""
    #: fully qualified class names this adapter serves
    classes: tuple[str, ...] = ()

    def __init__(self, sac):
        self.sac = sac

    # -- parts ---------------------------------------------------------------
    @property
    def critic(self) -> torch.nn.Module:
        return self.sac.critic

    @property
    def critic_target(self) -> torch.nn.Module:
        return self.sac.critic_target

    @property
    def actor(self) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def critic_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    @property
    def actor_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    @property
    def act_dim(self) -> int:
        raise NotImplementedError

    @property
    def gamma(self) -> float:
        raise NotImplementedError

    @property
    def tau(self) -> float:
        raise NotImplementedError

    @property
    def target_update_every(self) -> int:
        raise NotImplementedError

    def alpha(self):
        """The entropy temperature, detached (a float or a 0-d tensor)."""
        raise NotImplementedError

    def temperature_state(self) -> list[torch.Tensor]:
        """Tensors holding α (for tests: model learning and refits must not change them)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.critic.parameters()).device

    def modules(self) -> list[torch.nn.Module]:
        """Every module whose parameters a model update must not change."""
        return [self.critic, self.critic_target, self.actor]

    # -- the policy ----------------------------------------------------------
    def squashed(self, states: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, log π(a|s))`` for given standard-normal ``eps``, reparameterised
        (differentiable in ``states`` and the actor's parameters)."""
        raise NotImplementedError

    def noise(self, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn((n, self.act_dim), generator=generator, device=like.device, dtype=like.dtype)

    def sample_action(self, states: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A fresh draw ``a ~ π(·|s)`` per row, with no gradient through it (as the
        authors' ``self._agent.actor(x).sample()``, va_mbpo gaussian_mlp.py l.353, l.367)."""
        with torch.no_grad():
            return self.squashed(states, self.noise(states.shape[0], states, generator))[0]

    def next_action_for_target(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a', log π(a'|s'))`` for the soft Bellman target, drawn as the agent's own
        critic update draws it (global torch RNG)."""
        raise NotImplementedError

    def mean_action(self, states: torch.Tensor) -> torch.Tensor:
        """The policy's deterministic action ``tanh(μ(s))`` (scaled to the action box)."""
        raise NotImplementedError

    # -- critic --------------------------------------------------------------
    def q1(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return critic_q1(self.critic, states, actions).squeeze(-1)

    def q_heads(self, states: torch.Tensor, actions: torch.Tensor, target_heads: bool = True) -> torch.Tensor:
        """``[H, N]``: Q1 and Q2 of the critic, then (``target_heads``) of the target critic."""
        nets = (self.critic, self.critic_target) if target_heads else (self.critic,)
        return torch.stack([q.squeeze(-1) for net in nets for q in net(states, actions)], 0)

    def critic_update(self, obs, action, reward, next_obs, not_done, grad_clip: float | None = None) -> float:
        """One soft-Bellman critic step, ``r + γ·not_done·(min Q_targ(s',a') − α log π(a'|s'))``
        (pytorch_sac_pranz24 sac.py ``update_parameters``; Yarats sac.py ``update_critic``);
        policy, α and the target network untouched. ``grad_clip``: critic gradient norm
        clip before the step (the authors' 2.0, va_mbpo pytorch_sac/agent/sac.py l.137)."""
        with torch.no_grad():
            a2, logp2 = self.next_action_for_target(next_obs)
            q1t, q2t = self.critic_target(next_obs, a2)
            target = reward + not_done * self.gamma * (torch.min(q1t, q2t) - self.alpha() * logp2)
        q1, q2 = self.critic(obs, action)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        opt = self.critic_optimizer
        opt.zero_grad()
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), grad_clip)
        opt.step()
        return loss.item()

    def soft_update_target(self) -> None:
        """``θ_targ ← τ θ + (1 − τ) θ_targ`` (same rule in both implementations)."""
        tau = self.tau
        with torch.no_grad():
            for p, pt in zip(self.critic.parameters(), self.critic_target.parameters()):
                pt.data.copy_(tau * p.data + (1 - tau) * pt.data)


class Pranz24SAC(AgentAdapter):
    """mbrl 0.2.0's ``pytorch_sac_pranz24.sac.SAC``."""

    kind = "pytorch_sac_pranz24"
    classes = ("mbrl.third_party.pytorch_sac_pranz24.sac.SAC",)

    @property
    def actor(self):
        return self.sac.policy

    @property
    def critic_optimizer(self):
        return self.sac.critic_optim

    @property
    def actor_optimizer(self):
        return self.sac.policy_optim

    @property
    def act_dim(self):
        return self.sac.policy.mean_linear.out_features

    @property
    def gamma(self):
        return self.sac.gamma

    @property
    def tau(self):
        return self.sac.tau

    @property
    def target_update_every(self):
        return int(self.sac.target_update_interval)

    def alpha(self):
        a = self.sac.alpha
        return a.detach() if isinstance(a, torch.Tensor) else float(a)

    def temperature_state(self):
        out = [torch.as_tensor(self.sac.alpha).detach().clone()]
        if hasattr(self.sac, "log_alpha"):
            out.append(self.sac.log_alpha.detach().clone())
        return out

    def squashed(self, states, eps):
        policy = self.sac.policy
        mean, log_std = policy(states)
        x = mean + log_std.exp() * eps
        y = torch.tanh(x)
        action = y * policy.action_scale + policy.action_bias
        squash = torch.log(policy.action_scale * (1 - y.pow(2)) + _EPS)
        logp = (_normal_logp(eps, log_std) - squash).sum(-1, keepdim=True)
        return action, logp

    def next_action_for_target(self, next_obs):
        a2, logp2, _ = self.sac.policy.sample(next_obs)
        return a2, logp2

    def mean_action(self, states):
        # GaussianPolicy.sample's third output (pytorch_sac_pranz24/model.py)
        policy = self.sac.policy
        mean, _ = policy(states)
        return torch.tanh(mean) * policy.action_scale + policy.action_bias


class YaratsSAC(AgentAdapter):
    """Yarats' ``pytorch_sac.agent.sac.SACAgent`` (mbrl 0.2.0.dev3; the authors' fork)."""

    kind = "pytorch_sac"
    classes = ("mbrl.third_party.pytorch_sac.agent.sac.SACAgent",)

    @property
    def actor(self):
        return self.sac.actor

    @property
    def critic_optimizer(self):
        return self.sac.critic_optimizer

    @property
    def actor_optimizer(self):
        return self.sac.actor_optimizer

    @property
    def act_dim(self):
        last = [m for m in self.sac.actor.trunk if isinstance(m, torch.nn.Linear)][-1]
        return last.out_features // 2  # the trunk outputs (μ, log σ)

    @property
    def gamma(self):
        return self.sac.discount

    @property
    def tau(self):
        return self.sac.critic_tau

    @property
    def target_update_every(self):
        return int(self.sac.critic_target_update_frequency)

    def alpha(self):
        return self.sac.log_alpha.detach().exp()

    def temperature_state(self):
        return [self.sac.log_alpha.detach().clone()]

    def _mu_log_std(self, states):
        # DiagGaussianActor.forward (pytorch_sac/agent/actor.py): log σ squashed into
        # log_std_bounds by tanh
        mu, log_std = self.sac.actor.trunk(states).chunk(2, dim=-1)
        lo, hi = self.sac.actor.log_std_bounds
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        return mu, log_std

    def squashed(self, states, eps):
        mu, log_std = self._mu_log_std(states)
        x = mu + log_std.exp() * eps
        action = torch.tanh(x)
        # SquashedNormal.log_prob: Normal log-density minus TanhTransform.log_abs_det_jacobian
        log_det = 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))
        logp = (_normal_logp(eps, log_std) - log_det).sum(-1, keepdim=True)
        return action, logp

    def mean_action(self, states):
        # SquashedNormal.mean = tanh(μ) (pytorch_sac/agent/actor.py)
        return torch.tanh(self._mu_log_std(states)[0])

    def next_action_for_target(self, next_obs):
        dist = self.sac.actor(next_obs)
        a2 = dist.rsample()
        return a2, dist.log_prob(a2).sum(-1, keepdim=True)


ADAPTERS: tuple[type[AgentAdapter], ...] = (Pranz24SAC, YaratsSAC)
_BY_CLASS: dict[str, type[AgentAdapter]] = {c: a for a in ADAPTERS for c in a.classes}


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unwrap(agent):
    """The SAC object inside mbrl's planning wrapper (or ``agent`` itself)."""
    return getattr(agent, "sac_agent", agent)


def adapter_for(agent) -> AgentAdapter:
    """The adapter for ``agent``'s class (its MRO is searched, so subclasses work)."""
    sac = unwrap(agent)
    for cls in type(sac).__mro__:
        adapter = _BY_CLASS.get(_qualname(cls))
        if adapter is not None:
            return adapter(sac)
    raise UnknownAgentError(
        f"no value-aware adapter for agent class {_qualname(type(sac))}; known: "
        + ", ".join(sorted(_BY_CLASS))
        + " (vaml_ext/mbpo/agents.py)"
    )
