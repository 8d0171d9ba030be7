"""Tabular advantage actor-critic (A2C) run inside the learned model, batched over runs.

The paper uses A2C as the policy-update step of its gridworld Dyna loop (§5.1,
"For all methods, we use A2C as the policy update protocol"). Each run has a softmax
policy table ``[S, A]`` and a value table ``[S]`` (the critic ``V_θv`` whose values enter
the value-aware model losses); all runs live in ``[runs, ...]`` tensors. One update
(Algorithm 2, policy update step) = a synchronous ``n``-step rollout of ``E`` imagined
environments per run in the model, GAE(λ) advantages, the policy-gradient loss with an
entropy bonus and the squared value error.
"""

from __future__ import annotations

import torch
from torch import nn

from vaml_ext.gridworld.env import NUM_ACTIONS, GridSpec
from vaml_ext.gridworld.model import CategoricalModel, FrozenCategorical, sample_categorical


class TabularA2C(nn.Module):
    def __init__(
        self,
        num_runs: int,
        n_states: int,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        entropy_coef: float = 0.01,
        policy_lr: float = 0.05,
        value_lr: float = 0.05,
        dtype=torch.float32,
    ):
        super().__init__()
        self.gamma, self.gae_lambda, self.entropy_coef = float(gamma), float(gae_lambda), float(entropy_coef)
        self.policy_logits = nn.Parameter(torch.zeros(num_runs, n_states, NUM_ACTIONS, dtype=dtype))
        self.V = nn.Parameter(torch.zeros(num_runs, n_states, dtype=dtype))
        self.policy_opt = torch.optim.Adam([self.policy_logits], lr=policy_lr, fused=True)
        self.value_opt = torch.optim.Adam([self.V], lr=value_lr, fused=True)
        # Algorithm 2's refit has its own optimiser: a run whose refit weight is 0 (MLE)
        # then gets exactly no update from it (a shared Adam would keep moving it by momentum).
        self.refit_opt = torch.optim.Adam([self.V], lr=value_lr, fused=True)

    def _gather_rows(self, table: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        flat = s.reshape(s.shape[0], -1)
        if table.dim() == 2:
            return table.gather(1, flat).reshape(s.shape)
        out = table.gather(1, flat.unsqueeze(-1).expand(-1, -1, table.shape[-1]))
        return out.reshape(s.shape + (table.shape[-1],))

    def values(self, s: torch.Tensor) -> torch.Tensor:
        """``V(s)`` for ``s`` of shape ``[runs, ...]``."""
        return self._gather_rows(self.V, s)

    @torch.no_grad()
    def act(self, s: torch.Tensor, generator: torch.Generator | None = None, greedy: bool = False) -> torch.Tensor:
        logits = self._gather_rows(self.policy_logits, s)
        if greedy:
            return logits.argmax(-1)
        return sample_categorical(torch.softmax(logits, -1), generator)

    # ----------------------------------------------------------------- rollouts
    @torch.no_grad()
    def rollout(
        self,
        model: CategoricalModel | FrozenCategorical,
        spec: GridSpec,
        state: torch.Tensor,
        t: torch.Tensor,
        n_steps: int,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Roll the current policy ``n_steps`` in the learned model from ``state``/``t``
        (``[runs, E]``; imagined episodes restart at the start cell when they reach the
        goal or the time limit). Rewards and termination come from the known reward
        function ``r(s, ŝ, t)`` on the model's sample ``ŝ`` (reward known: the objectives of paper Eq. 8-10 fit only the transitions).
        Returns ``[runs, E, n]`` tensors plus the final ``state``/``t``."""
        keys = ("s", "a", "r", "s2", "term", "done")
        out: dict[str, list] = {k: [] for k in keys}
        for _ in range(n_steps):
            a = self.act(state, generator)
            s2 = model.sample(state, a, generator)
            t = t + 1
            r = spec.reward(state, s2, t).to(self.V.dtype)
            term = s2 == spec.goal
            done = term | (t >= spec.max_steps)
            for k, v in zip(keys, (state, a, r, s2, term, done)):
                out[k].append(v)
            state = torch.where(done, torch.full_like(s2, spec.start), s2)
            t = torch.where(done, torch.zeros_like(t), t)
        traj = {k: torch.stack(v, dim=-1) for k, v in out.items()}
        traj["final_state"], traj["final_t"] = state, t
        return traj

    @torch.no_grad()
    def gae(self, traj: dict[str, torch.Tensor]):
        """GAE(λ) advantages and λ-returns; bootstraps ``V(s')`` unless ``s'`` is the goal,
        and cuts the trace at episode ends (goal or time limit)."""
        v = self.values(traj["s"])
        v2 = self.values(traj["s2"]) * (~traj["term"]).to(v.dtype)
        delta = traj["r"] + self.gamma * v2 - v
        cont = (~traj["done"]).to(v.dtype) * self.gamma * self.gae_lambda
        adv = torch.zeros_like(delta)
        running = torch.zeros_like(delta[..., 0])
        for i in range(delta.shape[-1] - 1, -1, -1):
            running = delta[..., i] + cont[..., i] * running
            adv[..., i] = running
        return adv, adv + v

    # ----------------------------------------------------------------- updates
    def a2c_update(self, traj: dict[str, torch.Tensor]) -> None:
        """One A2C step on an imagined rollout (policy and value; per-run means, summed)."""
        adv, ret = self.gae(traj)
        logits = self._gather_rows(self.policy_logits, traj["s"])
        logp_all = torch.log_softmax(logits, -1)
        logp = logp_all.gather(-1, traj["a"].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        pi_loss = -(logp * adv).flatten(1).mean(1) - self.entropy_coef * entropy.flatten(1).mean(1)
        v_loss = 0.5 * (self.values(traj["s"]) - ret).pow(2).flatten(1).mean(1)
        self.policy_opt.zero_grad(set_to_none=True)
        self.value_opt.zero_grad(set_to_none=True)
        (pi_loss.sum() + v_loss.sum()).backward()
        self.policy_opt.step()
        self.value_opt.step()

    def value_refit(self, traj: dict[str, torch.Tensor], weight: torch.Tensor, n_updates: int = 1) -> None:
        """Algorithm 2 lines 9-10: fit *only* the value table to λ-returns of rollouts of
        the fixed policy in the current model. ``weight[run]`` (0/1) selects the runs."""
        w = weight.to(self.V.dtype)
        for _ in range(n_updates):
            _, ret = self.gae(traj)
            v_loss = 0.5 * (self.values(traj["s"]) - ret).pow(2).flatten(1).mean(1)
            self.refit_opt.zero_grad(set_to_none=True)
            (w * v_loss).sum().backward()
            self.refit_opt.step()
        self.policy_logits.grad = None
