"""The authors' stale-value refit, ``overrides.value_refit_mode=authors``.

What the authors' MBPO fork does (GitHub ``nirbhayjm/va_mbpo``, commit 203ea3e), and
what this callback reproduces on either pinned mbrl-lib base:

* ``mbrl/models/model_trainer.py`` l.151-152: the model-update counter and the critic
  update counter start at 0 **at every ``ModelTrainer.train`` call** (here: at every
  ``on_model_train_begin``);
* l.179-183: every ``value_update_interval`` model minibatch updates (train batches
  only):
* l.184: ``sac_buffer.clear_all_contents()`` -- the agent's own SAC buffer is wiped;
* l.185-197: ``rollout_model_and_populate_sac_buffer`` (upstream's own function, from
  ``mbrl/algorithms/mbpo.py``, called with the MBPO loop's ``model_env``, real replay
  buffer, agent, current rollout length and ``sac_samples_action``) from
  ``N + m − (N mod m)`` start states, ``N = v_update_batch_size`` (50,000,
  ``mbrl/algorithms/mbpo.py`` l.244) and ``m`` the number of elite members (all
  members before elites are chosen) -- refills the SAC buffer with model rollouts;
* l.200-204: ``num_v_updates_in_model`` (5) critic updates ``update_critic_from_buffer``
  on batches of the agent's batch size from that buffer: the standard soft Bellman
  target (``pytorch_sac/agent/sac.py`` l.115-127, ``not_done_no_max`` mask), critic
  gradient norm clipped at 2.0 (l.137), and the target network soft-updated when the
  restarted counter ``% critic_target_update_frequency == 0`` (l.202-203).

Policy and temperature are never touched. The refit consumes the MBPO loop's random
streams (real replay buffer sampling, the model env's generator, torch's global RNG
for actions), as the authors' code does; the SAC buffer is *not* restored afterwards
(the loop's next model rollout is added to what the refit left, as in the authors'
loop, ``mbrl/algorithms/mbpo.py`` l.254).
"""

from __future__ import annotations

import time
from typing import Optional, Tuple

import torch

from mbrl.util.plugins import Callback
from vaml_ext.mbpo.agents import AgentAdapter, adapter_for

AUTHORS_REFIT_STARTS = 50000  # va_mbpo mbrl/algorithms/mbpo.py l.244 (v_update_batch_size)
AUTHORS_CRITIC_GRAD_CLIP = 2.0  # va_mbpo pytorch_sac/agent/sac.py l.137


# -- the two SAC-buffer types of the two bases ----------------------------------------
def clear_buffer(buf) -> None:
    """Empty the agent's SAC buffer in place (the authors' ``clear_all_contents``,
    va_mbpo pytorch_sac/replay_buffer.py l.47-60: the index and fill state reset)."""
    if hasattr(buf, "not_dones_no_max"):  # pytorch_sac.ReplayBuffer (mbrl 0.2.0.dev3)
        buf.idx, buf.full = 0, False
        if hasattr(buf, "last_save"):
            buf.last_save = 0
    elif hasattr(buf, "num_stored") and hasattr(buf, "cur_idx"):  # mbrl.util.ReplayBuffer
        buf.cur_idx, buf.num_stored = 0, 0
        if hasattr(buf, "_start_last_trajectory"):
            buf._start_last_trajectory = 0
        if getattr(buf, "trajectory_indices", None) is not None:
            buf.trajectory_indices = []
    else:
        raise TypeError(f"value_refit_mode=authors cannot clear a SAC buffer of type {type(buf).__name__}")


def sample_buffer(buf, n: int, device) -> Tuple[torch.Tensor, ...]:
    """``(s, a, r [n,1], s', not_done [n,1])`` from either buffer type; ``not_done`` is
    ``1 − terminated`` (time-limit truncations bootstrap, as ``not_done_no_max``)."""
    if hasattr(buf, "not_dones_no_max"):
        s, a, r, s2, _not_done, not_done_no_max = buf.sample(n)
        return s.to(device), a.to(device), r.to(device), s2.to(device), not_done_no_max.to(device)
    s, a, s2, r, term, _ = buf.sample(n).astuple()

    def t(x):
        return torch.as_tensor(x, dtype=torch.float32, device=device)

    return t(s), t(a), t(r).reshape(-1, 1), t(s2), 1.0 - t(term).reshape(-1, 1)


def _members_used(dynamics_model) -> int:
    ens = dynamics_model.model
    elites = getattr(ens, "elite_models", None)
    return len(elites) if elites is not None else int(ens.num_members)


def refit_start_count(num_starts: int, dynamics_model) -> int:
    """``N + m − (N mod m)`` (va_mbpo model_trainer.py l.185-194; note: ``N + m`` when
    ``m`` divides ``N``), ``m`` = elites if chosen, else all ensemble members."""
    m = _members_used(dynamics_model)
    return num_starts + m - (num_starts % m)


class AuthorsValueRefit(Callback):
    """``value_refit_mode=authors``: wipe-and-refill the agent's SAC buffer, clipped
    critic-only updates, counters restarted per model-training call."""

    def __init__(
        self,
        interval: int,
        num_updates: int,
        num_starts: int = AUTHORS_REFIT_STARTS,
        batch_size: Optional[int] = None,
        critic_grad_clip: Optional[float] = AUTHORS_CRITIC_GRAD_CLIP,
    ):
        self.interval = int(interval)
        self.num_updates = int(num_updates)
        self.num_starts = int(num_starts)
        self.batch_size = batch_size
        self.critic_grad_clip = critic_grad_clip
        self.model_steps = 0  # restarted at each model-training call (l.151)
        self.critic_steps = 0  # restarted at each model-training call (l.152)
        self.refits = 0
        self.seconds = 0.0
        self.critic_updates = 0  # total, for diagnostics
        self.last_buffer_size = 0
        self.capped = False  # start states capped at the SAC buffer's capacity (tiny budgets)

    # -- checkpoint (vaml_ext.mbpo.checkpoint) -----------------------------------------
    _STATE = ("model_steps", "critic_steps", "refits", "seconds", "critic_updates", "last_buffer_size")

    def state_dict(self):
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, st):
        for k in self._STATE:
            setattr(self, k, st[k])

    # -- plugin hooks -------------------------------------------------------------
    def on_model_train_begin(self, ctx):
        self.model_steps = 0
        self.critic_steps = 0

    def on_model_batch(self, ctx, epoch, loss, meta, mode):
        if mode != "train" or self.interval <= 0:
            return
        self.model_steps += 1
        if self.model_steps % self.interval == 0:
            self.refit(ctx)

    # -- the refit ----------------------------------------------------------------
    def collect(self, ctx) -> None:
        """Wipe the agent's SAC buffer and refill it with model rollouts (l.184-197)."""
        from mbrl.algorithms.mbpo import rollout_model_and_populate_sac_buffer

        buf = ctx.sac_buffer
        if buf is None:
            raise RuntimeError("value_refit_mode=authors needs the MBPO loop's SAC buffer in the plugin context")
        clear_buffer(buf)
        n = refit_start_count(self.num_starts, ctx.dynamics_model)
        capacity = int(buf.capacity)
        if n > capacity:
            # Tiny budgets only (the shipped configs' SAC buffers hold >= 80,000 rows): one
            # rollout step must fit the buffer, so start from as many states as it holds.
            m = _members_used(ctx.dynamics_model)
            n = max(m, capacity // m * m)
            if not self.capped:
                print(
                    f"vaml: value_refit_mode=authors: the SAC buffer holds {capacity} rows, fewer than "
                    f"the refit's {self.num_starts} start states; using {n}",
                    flush=True,
                )
            self.capped = True
        rollout_model_and_populate_sac_buffer(
            ctx.model_env,
            ctx.replay_buffer,
            ctx.agent,
            buf,
            ctx.cfg.algorithm.sac_samples_action,
            max(1, int(ctx.rollout_length or 1)),
            n,
        )
        self.last_buffer_size = len(buf)

    def critic_updates_on(self, ag: AgentAdapter, buf) -> float:
        n = int(self.batch_size or getattr(ag.sac, "batch_size", None) or 256)
        loss = 0.0
        for _ in range(self.num_updates):
            s, a, r, s2, not_done = sample_buffer(buf, n, ag.device)
            loss = ag.critic_update(s, a, r, s2, not_done, grad_clip=self.critic_grad_clip)
            if self.critic_steps % ag.target_update_every == 0:  # l.202, before the increment
                ag.soft_update_target()
            self.critic_steps += 1
            self.critic_updates += 1
        return loss

    def refit(self, ctx) -> None:
        t0 = time.perf_counter()
        self.collect(ctx)
        if self.last_buffer_size > 0 and self.num_updates > 0:
            self.critic_updates_on(adapter_for(ctx.agent), ctx.sac_buffer)
        self.refits += 1
        self.seconds += time.perf_counter() - t0


def adapted_critic_updates(refit, ag: AgentAdapter, scratch) -> float:
    """The default refit's critic steps (:meth:`vaml_ext.mbpo.refit.StaleValueRefit.critic_updates_on`)
    for agents other than pranz24's ``SAC``: same schedule, the agent's own update rule."""
    loss = 0.0
    for _ in range(refit.num_updates):
        s, a, r, s2, not_done = sample_buffer(scratch, min(refit.batch_size, len(scratch)), ag.device)
        loss = ag.critic_update(s, a, r, s2, not_done)
        refit.critic_updates += 1
        if refit.critic_updates % ag.target_update_every == 0:
            ag.soft_update_target()
    return loss
