"""Stale-value correction for MBPO (paper Algorithm 2) as an mbrl-lib plugin callback.

Every ``value_update_interval`` model gradient steps during model learning:

1. roll the *current* model out with the *current, fixed* policy, for the current
   rollout length, from ``value_refit_batch_size`` real start states drawn from the
   replay buffer, into a scratch buffer ``D''`` that is separate from the agent's SAC
   buffer (Alg. 2, "collect m samples in the learned model");
2. run ``num_value_updates`` critic-only updates on ``D''`` with SAC's soft Bellman
   target ``r + γ (1 − done) (min Q_targ(s', a') − α log π(a'|s'))``, ``a' ~ π(s')``,
   and SAC's soft target-network update every ``target_update_interval`` updates
   (Alg. 2, "update value parameters only").

The policy, the entropy temperature α, the agent's replay/SAC buffers and the real
replay buffer's sampling stream are untouched: start states are drawn with the
refit's own generator and rollouts use a separate ``ModelEnv`` with its own torch
generator. ``value_update_interval = 0`` disables the refit ("MA-L1 Naive").
"""

from __future__ import annotations

import math
import time
from typing import Any

import mbrl.models
import mbrl.util
import numpy as np
import torch
from mbrl.util.plugins import Callback

from vaml_ext.mbpo.agents import AgentAdapter, adapter_for
from vaml_ext.mbpo.buffers import sample_buffer


class ValueRefit(Callback):
    """What both refit modes share (paper Algorithm 2's schedule): every ``interval`` train
    minibatches of model learning, :meth:`collect` model rollouts of the current policy, then
    :meth:`critic_updates_on` them -- critic-only updates, each one
    :meth:`AgentAdapter.critic_update <vaml_ext.mbpo.agents.AgentAdapter.critic_update>`, the
    one critic-update path for every agent and mode. Subclasses say where the rollouts go and
    when the target network moves; ``_STATE`` is what a checkpoint carries."""

    _STATE: tuple[str, ...] = ("model_steps", "refits", "seconds", "critic_updates", "last_buffer_size")

    def __init__(self, interval: int, num_updates: int, num_starts: int, batch_size: int | None):
        self.interval = int(interval)
        self.num_updates = int(num_updates)
        self.num_starts = int(num_starts)
        self.batch_size = batch_size
        self.model_steps = 0
        self.refits = 0
        self.seconds = 0.0
        self.critic_updates = 0  # total, for diagnostics
        self.last_buffer_size = 0

    # -- checkpoint (vaml_ext.mbpo.checkpoint) -----------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, st) -> None:
        for k in self._STATE:
            setattr(self, k, st[k])

    # -- plugin hooks -------------------------------------------------------------
    def on_model_batch(self, ctx, epoch, loss, meta, mode):
        if mode != "train" or self.interval <= 0:
            return
        self.model_steps += 1
        if self.model_steps % self.interval == 0:
            self.refit(ctx)

    # -- the refit ----------------------------------------------------------------
    def collect(self, ctx):  # pragma: no cover - abstract
        """Model rollouts of the current policy into a buffer; returns the buffer."""
        raise NotImplementedError

    def critic_updates_on(self, ag: AgentAdapter, buf) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def refit(self, ctx) -> None:
        t0 = time.perf_counter()
        buf = self.collect(ctx)
        self.last_buffer_size = len(buf)
        if self.last_buffer_size > 0 and self.num_updates > 0:
            self.critic_updates_on(adapter_for(ctx.agent), buf)
        self.refits += 1
        self.seconds += time.perf_counter() - t0


class StaleValueRefit(ValueRefit):
    """Paper Algorithm 2 with a separate ``D''`` (the module docstring)."""

    def __init__(self, interval: int, num_updates: int, num_starts: int, batch_size: int, seed: int = 0):
        super().__init__(interval, num_updates, num_starts, int(batch_size))
        self.rng = np.random.default_rng(int(seed) + 104729)
        self.generator: torch.Generator | None = None
        self.model_env: mbrl.models.ModelEnv | None = None

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "generator": self.generator.get_state(), **super().state_dict()}

    def load_state_dict(self, st):
        self.rng.bit_generator.state = st["rng"]
        self.generator.set_state(st["generator"])  # on_train_begin has built it
        super().load_state_dict(st)

    # -- plugin hooks -------------------------------------------------------------
    def on_train_begin(self, ctx):
        self.generator = torch.Generator(device=ctx.dynamics_model.device)
        self.generator.manual_seed(int(ctx.cfg.seed) + 15485863)
        self.model_env = mbrl.models.ModelEnv(
            ctx.env, ctx.dynamics_model, ctx.model_env.termination_fn, None, generator=self.generator
        )

    # -- Algorithm 2 --------------------------------------------------------------
    def collect(self, ctx) -> mbrl.util.ReplayBuffer:
        """Roll the current model out with the current policy into a fresh D''."""
        rb = ctx.replay_buffer
        n = len(rb)
        horizon = max(1, int(ctx.rollout_length or 1))
        # random_model propagation splits the batch evenly over the (elite) members
        m = math.lcm(int(ctx.dynamics_model.model.num_members), int(ctx.dynamics_model.num_elites or 1))
        num_starts = -(-self.num_starts // m) * m
        idx = self.rng.integers(0, n, size=num_starts)
        obs = rb.obs[idx]
        scratch = mbrl.util.ReplayBuffer(
            num_starts * horizon,
            rb.obs.shape[1:],
            rb.action.shape[1:],
            obs_type=np.float32,
            action_type=np.float32,
            reward_type=np.float32,
            rng=np.random.default_rng(self.rng.integers(1 << 31)),
        )
        assert self.model_env is not None, "on_train_begin builds the refit's model env"
        model_state = self.model_env.reset(initial_obs_batch=obs.astype(np.float32), return_as_np=True)
        alive = np.ones(len(obs), dtype=bool)
        for _ in range(horizon):
            action = ctx.agent.act(obs, sample=ctx.cfg.algorithm.sac_samples_action, batched=True)
            next_obs, reward, done, model_state = self.model_env.step(action, model_state, sample=True)
            done = done.reshape(-1).astype(bool)
            scratch.add_batch(
                obs[alive],
                action[alive],
                next_obs[alive],
                reward[alive, 0],
                done[alive],
                np.zeros(int(alive.sum()), dtype=bool),
            )
            alive &= ~done
            obs = next_obs
            if not alive.any():
                break
        return scratch

    def critic_updates_on(self, ag: AgentAdapter, scratch) -> float:
        """``num_value_updates`` critic steps on D'' (policy and α untouched); SAC's soft target
        update after every ``target_update_interval``-th of them, counted over the run."""
        loss = 0.0
        n = min(len(scratch) if self.batch_size is None else self.batch_size, len(scratch))
        for _ in range(self.num_updates):
            s, a, r, s2, not_done = sample_buffer(scratch, n, ag.device)
            loss = ag.critic_update(s, a, r, s2, not_done)
            self.critic_updates += 1
            if self.critic_updates % ag.target_update_every == 0:
                ag.soft_update_target()
        return loss
