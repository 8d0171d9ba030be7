"""Checkpoint/resume of MBPO runs (the evaluation curve and progress output:
:mod:`vaml_ext.mbpo.recorder`, which drives this module's :class:`Checkpointer`).

Registered by the ``vaml`` plugin for every loss (``mle`` included) through the loop
state exposed by ``patches/mbrl-lib/0010`` (on the paper base, mbrl 0.2.0.dev3:
``patches/mbrl-lib-dev3/0004``):

* ``<work_dir>/returns.csv`` -- one row per evaluation in the run-directory format of
  :mod:`vaml_ext.runlog.rundir` (``env_steps`` = loop env steps so far, as mbrl's
  ``results.csv`` counts them: the initial exploration steps are not included);
* ``overrides.checkpoint_every=N`` (epochs; 0 = off, the default) -- after every N-th
  evaluation, ``<work_dir>/ckpt/latest.pt`` is written atomically (the one before is kept
  as ``ckpt/previous.pt``, :class:`~vaml_ext.runlog.ckpt.CheckpointStore`) with everything the
  loop needs to continue *bit-identically*: SAC networks, optimisers and temperature,
  the dynamics model (weights, input normaliser, elite set) and its optimiser, the real
  and model-rollout replay buffers, every random stream (numpy/torch/python globals,
  the loop generator, the model generator, both environments' generators) and the
  plugins' own state (value-aware update, refit, diagnostics);
* a checkpointing run holds the work dir's :class:`~vaml_ext.runlog.lock.RunLock`
  (one writer per directory; :func:`vaml_ext.mbpo.runner.run_mbpo` takes it for every run);
* a run whose work dir already holds a checkpoint resumes from it (``overrides.resume``,
  default true); one that does not load is set aside and the previous one used; if none
  loads the run stops, naming the files (``overrides.resume=false`` starts over, setting
  the old checkpoints aside). ``returns.csv`` is first truncated to the checkpoint's step, so no
  evaluation row is lost or duplicated; mbrl's ``results.csv`` (reopened empty by its
  logger) is refilled with the kept rows through the loop's logger, or, in a ``silent``
  run (whose plugins get no logger), rewritten from ``returns.csv`` when
  :func:`vaml_ext.mbpo.runner.run_mbpo` returns. (mbrl's other CSV logs restart at the
  resume; returns.csv is the complete record.)
  A checkpoint written by a different configuration is refused (the differing keys are
  named).
* ``overrides.progress_bar=true`` -- a progress line/bar with env steps, the latest
  return and the ETA, and a summary at the end of the run.

Upstream's MBPO loop calls ``env.reset()`` at the start of every epoch, so a checkpoint
at an evaluation (epoch end) needs no mid-episode environment state.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaml_ext.mbpo.buffers import buffer_state, gen_state, load_buffer_state, new_buffer, set_gen_state
from vaml_ext.runlog.ckpt import CheckpointStore, check_checkpoint_config
from vaml_ext.runlog.lock import RunLock
from vaml_ext.runlog.rng import capture_rng, restore_rng
from vaml_ext.runlog.rundir import plain_config

RESTART_HINT = "re-run with overrides.resume=false"
#: config keys that may differ between the run that wrote a checkpoint and the one resuming it
#: (not ``overrides.num_steps``: mbrl sizes the real replay buffer from it)
RESUME_MUTABLE_KEYS = (
    "overrides.resume",
    "overrides.progress_bar",
    "overrides.checkpoint_every",
    "overrides.wandb",
    "overrides.wandb_project",
    "overrides.wandb_entity",
    "overrides.wandb_mode",
)


# ---- generic state of objects without a state_dict -------------------------------------
def _obj_state(obj) -> dict:
    """Modules, optimisers, tensors and plain numbers among ``vars(obj)`` (e.g. the SAC agent)."""
    out: dict = {}
    for k, v in vars(obj).items():
        if isinstance(v, (torch.nn.Module, torch.optim.Optimizer)):
            out[k] = ("state_dict", v.state_dict())
        elif isinstance(v, torch.Tensor):
            out[k] = ("tensor", v.detach().clone())
        elif isinstance(v, (bool, int, float)):
            out[k] = ("value", v)
    return out


def _load_obj_state(obj, state: dict) -> None:
    for k, (kind, v) in state.items():
        cur = getattr(obj, k)
        if kind == "state_dict":
            cur.load_state_dict(v)
        elif kind == "tensor":
            if isinstance(cur, torch.Tensor):
                with torch.no_grad():
                    cur.copy_(v)  # in place: optimisers hold references (e.g. SAC's log_alpha)
            else:
                setattr(obj, k, v)
        else:
            setattr(obj, k, v)


def _env_state(env) -> dict:
    u = env.unwrapped
    return {
        "np_random": gen_state(u.np_random),
        "action_space": gen_state(env.action_space.np_random),
        "observation_space": gen_state(env.observation_space.np_random),
        # the paper base's gym-0.17 shim (mbrl/util/gym_compat.py, patches/mbrl-lib-dev3/0001)
        # holds `env.seed(s)` until the next reset; a fresh env has one pending, a checkpointed
        # run had used it long before, so it is restored too (None)
        "pending_seed": getattr(env, "_pending_seed", None),
    }


def _load_env_state(env, st: dict) -> None:
    set_gen_state(env.unwrapped.np_random, st["np_random"])
    set_gen_state(env.action_space.np_random, st["action_space"])
    set_gen_state(env.observation_space.np_random, st["observation_space"])
    if hasattr(env, "_pending_seed"):
        env._pending_seed = st.get("pending_seed")


class Checkpointer:
    """Checkpoint/resume of one MBPO run (module docstring); driven by
    :class:`vaml_ext.mbpo.recorder.RunRecorder`, which orders it with the run's other records."""

    def __init__(self, every: int = 0, resume: bool = True, stateful=(), clock=None):
        self.every = int(every)
        self.resume = bool(resume)
        self.stateful = dict(stateful)  # name -> object with state_dict()/load_state_dict()
        self.clock = clock
        self.resumed_from = None
        self.lock = None

    @staticmethod
    def store(work_dir) -> CheckpointStore:
        return CheckpointStore(Path(work_dir) / "ckpt", restart_hint=RESTART_HINT)

    def begin(self, ctx):
        """Hold the work dir's lock and resume from its checkpoint when there is one: returns
        the env step to keep ``returns.csv`` until (None: a fresh run)."""
        if self.every <= 0:
            return None
        self.lock = RunLock(ctx.work_dir).acquire()  # a no-op inside run_mbpo, which holds it already
        store = self.store(ctx.work_dir)
        if not self.resume:
            store.set_aside_all()
            return None
        path, st = store.load(lambda p: torch.load(p, weights_only=False))
        return None if st is None else self._restore(ctx, path, st)

    def maybe_save(self, ctx) -> None:
        """After an evaluation: a checkpoint every ``every`` epochs."""
        if self.every > 0 and (ctx.epoch + 1) % self.every == 0:
            self._save(ctx)

    def end(self) -> None:
        if self.lock is not None:
            self.lock.release()

    # ---- checkpoint ---------------------------------------------------------------------
    def _save(self, ctx) -> None:
        dyn = ctx.dynamics_model
        norm = getattr(dyn, "input_normalizer", None)
        state = {
            "format": 1,
            "config": plain_config(ctx.cfg),
            "loop": {
                "env_steps": int(ctx.env_steps),
                "epoch": int(ctx.epoch),
                "updates_made": int(ctx.updates_made),
                "best_eval_reward": float(ctx.best_eval_reward),
            },
            "wall_time_s": self.clock.wall_time(),
            "agent": _obj_state(ctx.agent.sac_agent),
            "model": dyn.state_dict(),
            "elite_models": getattr(dyn.model, "elite_models", None),
            "normalizer": None if norm is None else (norm.mean.clone(), norm.std.clone()),
            "model_optimizer": ctx.model_trainer.optimizer.state_dict(),
            "model_trainer_iteration": ctx.model_trainer.train_iteration,
            "replay_buffer": buffer_state(ctx.replay_buffer),
            "sac_buffer": None if ctx.sac_buffer is None else buffer_state(ctx.sac_buffer),
            "torch_generator": ctx.torch_generator.get_state(),
            "rng": capture_rng(),
            "env": _env_state(ctx.env),
            "test_env": _env_state(ctx.test_env),
            "update_fn": (
                ctx.model_trainer.update_fn.state_dict() if hasattr(ctx.model_trainer.update_fn, "state_dict") else None
            ),
            "plugins": {k: v.state_dict() for k, v in self.stateful.items()},
        }
        self.store(ctx.work_dir).save(state)

    def _restore(self, ctx, path: Path, st: dict) -> int:
        check_checkpoint_config(
            path,
            st["config"],
            plain_config(ctx.cfg),
            "Use another work dir, or overrides.resume=false to start over.",
            ignore=lambda k: k in RESUME_MUTABLE_KEYS or k.startswith("hydra."),
        )
        _load_obj_state(ctx.agent.sac_agent, st["agent"])
        dyn = ctx.dynamics_model
        dyn.load_state_dict(st["model"])
        if st["elite_models"] is not None:
            dyn.set_elite(st["elite_models"])
        if st["normalizer"] is not None:
            dyn.input_normalizer.mean, dyn.input_normalizer.std = (t.clone() for t in st["normalizer"])
        ctx.model_trainer.optimizer.load_state_dict(st["model_optimizer"])
        ctx.model_trainer.train_iteration = st["model_trainer_iteration"]
        load_buffer_state(ctx.replay_buffer, st["replay_buffer"])
        ctx.sac_buffer = None if st["sac_buffer"] is None else new_buffer(st["sac_buffer"])
        ctx.torch_generator.set_state(st["torch_generator"])
        restore_rng(st["rng"])
        _load_env_state(ctx.env, st["env"])
        _load_env_state(ctx.test_env, st["test_env"])
        if st["update_fn"] is not None:
            ctx.model_trainer.update_fn.load_state_dict(st["update_fn"])
        for k, v in self.stateful.items():
            v.load_state_dict(st["plugins"][k])
        loop = st["loop"]
        ctx.env_steps = loop["env_steps"] + 1
        ctx.epoch = loop["epoch"] + 1
        ctx.updates_made = loop["updates_made"]
        ctx.best_eval_reward = loop["best_eval_reward"]
        self.clock.restart_from(st["wall_time_s"])
        self.resumed_from = ctx.env_steps
        print(f"[mbpo] resumed from {path}: epoch {loop['epoch']} done, env step {ctx.env_steps}", flush=True)
        return ctx.env_steps
