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

from vaml_ext.mbpo.agents import AgentAdapter
from vaml_ext.mbpo.buffers import clear_buffer, sample_buffer
from vaml_ext.mbpo.refit import ValueRefit

AUTHORS_REFIT_STARTS = 50000  # va_mbpo mbrl/algorithms/mbpo.py l.244 (v_update_batch_size)
AUTHORS_CRITIC_GRAD_CLIP = 2.0  # va_mbpo pytorch_sac/agent/sac.py l.137


def _members_used(dynamics_model) -> int:
    ens = dynamics_model.model
    elites = getattr(ens, "elite_models", None)
    return len(elites) if elites is not None else int(ens.num_members)


def refit_start_count(num_starts: int, dynamics_model) -> int:
    """``N + m − (N mod m)`` (va_mbpo model_trainer.py l.185-194; note: ``N + m`` when
    ``m`` divides ``N``), ``m`` = elites if chosen, else all ensemble members."""
    m = _members_used(dynamics_model)
    return num_starts + m - (num_starts % m)


class AuthorsValueRefit(ValueRefit):
    """``value_refit_mode=authors``: wipe-and-refill the agent's SAC buffer, clipped
    critic-only updates, counters restarted per model-training call."""

    _STATE = ("critic_steps", *ValueRefit._STATE)

    def __init__(
        self,
        interval: int,
        num_updates: int,
        num_starts: int = AUTHORS_REFIT_STARTS,
        batch_size: int | None = None,
        critic_grad_clip: float | None = AUTHORS_CRITIC_GRAD_CLIP,
    ):
        super().__init__(interval, num_updates, num_starts, batch_size)
        self.critic_grad_clip = critic_grad_clip
        self.critic_steps = 0  # restarted at each model-training call (l.152); model_steps too (l.151)
        self.capped = False  # start states capped at the SAC buffer's capacity (tiny budgets)

    # -- plugin hooks -------------------------------------------------------------
    def on_model_train_begin(self, ctx):
        self.model_steps = 0
        self.critic_steps = 0

    # -- the refit ----------------------------------------------------------------
    def collect(self, ctx):
        """Wipe the agent's SAC buffer and refill it with model rollouts (l.184-197); returns it."""
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
        return buf

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
