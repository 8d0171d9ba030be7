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

import numpy as np
import torch
import torch.nn.functional as F

import mbrl.models
import mbrl.util
from mbrl.util.plugins import Callback
from vaml_ext.mbpo.agents import Pranz24SAC, adapter_for


class StaleValueRefit(Callback):
    def __init__(self, interval: int, num_updates: int, num_starts: int, batch_size: int, seed: int = 0):
        self.interval = int(interval)
        self.num_updates = int(num_updates)
        self.num_starts = int(num_starts)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(int(seed) + 104729)
        self.generator = None
        self.model_env: mbrl.models.ModelEnv | None = None
        self.model_steps = 0
        self.refits = 0
        self.seconds = 0.0
        self.critic_updates = 0
        self.last_buffer_size = 0

    # -- checkpoint (vaml_ext.mbpo.checkpoint) -----------------------------------------
    def state_dict(self):
        return {
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "model_steps": self.model_steps,
            "refits": self.refits,
            "seconds": self.seconds,
            "critic_updates": self.critic_updates,
            "last_buffer_size": self.last_buffer_size,
        }

    def load_state_dict(self, st):
        self.rng.bit_generator.state = st["rng"]
        self.generator.set_state(st["generator"])  # on_train_begin has built it
        for k in ("model_steps", "refits", "seconds", "critic_updates", "last_buffer_size"):
            setattr(self, k, st[k])

    # -- plugin hooks -------------------------------------------------------------
    def on_train_begin(self, ctx):
        self.generator = torch.Generator(device=ctx.dynamics_model.device)
        self.generator.manual_seed(int(ctx.cfg.seed) + 15485863)
        self.model_env = mbrl.models.ModelEnv(
            ctx.env, ctx.dynamics_model, ctx.model_env.termination_fn, None, generator=self.generator
        )

    def on_model_batch(self, ctx, epoch, loss, meta, mode):
        if mode != "train" or self.interval <= 0:
            return
        self.model_steps += 1
        if self.model_steps % self.interval == 0:
            self.refit(ctx)

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

    def critic_updates_on(self, sac, scratch) -> float:
        """``num_value_updates`` SAC critic steps on D''; policy and α untouched."""
        from mbrl.third_party.pytorch_sac_pranz24.utils import soft_update  # absent from mbrl 0.2.0.dev3

        loss_val = 0.0
        device = sac.device
        for _ in range(self.num_updates):
            s, a, s2, r, term, _ = scratch.sample(min(self.batch_size, len(scratch))).astuple()
            s = torch.as_tensor(s, dtype=torch.float32, device=device)
            a = torch.as_tensor(a, dtype=torch.float32, device=device)
            s2 = torch.as_tensor(s2, dtype=torch.float32, device=device)
            r = torch.as_tensor(r, dtype=torch.float32, device=device).unsqueeze(1)
            not_done = 1.0 - torch.as_tensor(term, dtype=torch.float32, device=device).unsqueeze(1)
            with torch.no_grad():
                a2, logp2, _ = sac.policy.sample(s2)
                q1t, q2t = sac.critic_target(s2, a2)
                alpha = sac.alpha.detach() if isinstance(sac.alpha, torch.Tensor) else sac.alpha
                target = r + not_done * sac.gamma * (torch.min(q1t, q2t) - alpha * logp2)
            q1, q2 = sac.critic(s, a)
            loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
            sac.critic_optim.zero_grad()
            loss.backward()
            sac.critic_optim.step()
            self.critic_updates += 1
            if self.critic_updates % sac.target_update_interval == 0:
                soft_update(sac.critic_target, sac.critic, sac.tau)
            loss_val = loss.item()
        return loss_val

    def refit(self, ctx) -> None:
        t0 = time.perf_counter()
        scratch = self.collect(ctx)
        self.last_buffer_size = len(scratch)
        if len(scratch) > 0 and self.num_updates > 0:
            ag = adapter_for(ctx.agent)
            if isinstance(ag, Pranz24SAC):
                self.critic_updates_on(ag.sac, scratch)
            else:  # e.g. mbrl 0.2.0.dev3's Yarats SACAgent: same schedule, its own update rule
                from vaml_ext.mbpo.refit_authors import adapted_critic_updates

                adapted_critic_updates(self, ag, scratch)
        self.refits += 1
        self.seconds += time.perf_counter() - t0
