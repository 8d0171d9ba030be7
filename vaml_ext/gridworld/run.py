"""One gridworld run (one grid size, one method, one seed) in the common run-directory
format of :mod:`vaml_ext.runlog.rundir`, with checkpoint/resume.

    from vaml_ext.gridworld.run import run_gridworld
    summary = run_gridworld("runs/grid5/ma_l1/seed0", size=5, method="ma_l1", seed=0,
                            env_steps=3000, eval_every=100, dyna={"model_lr": 0.1})

The training loop is :class:`~vaml_ext.gridworld.dyna.DynaTrainer` -- the machinery of
:func:`~vaml_ext.gridworld.dyna.run_dyna` -- with a batch of one run whose random stream
is seeded from ``seed`` and ``size`` (:func:`~vaml_ext.gridworld.dyna.stream_seed` with
``base_seed = seed``). So ``run_gridworld(d, N, m, k, ...)`` gives exactly the returns of
``run_dyna(N, [m], [k], cfg, base_seed=k)``, but **not** the curve of ``(m, k)`` inside the
batched Figure-1 sweep: there all runs of a size share one stream and every draw has
shape ``[runs, ...]``, so a run's numbers depend on the whole batch (the same holds for
any batched sweep). Seeds run alone are independent runs of the same distribution.

Files written into ``run_dir`` (see :mod:`vaml_ext.runlog.rundir`):

* ``run.yaml``  -- only if absent (a launcher may have written a richer one): backend,
  env, method, seed, budget, the resolved Dyna config and git provenance;
* ``returns.csv`` (``rundir.EVAL_FILE``, the contract's evaluation curve, first named
  ``eval.csv``) -- one row per evaluation, at 0, eval_every, 2·eval_every, ... env steps
  (as :func:`run_dyna`): ``env_steps, return, wall_time_s`` plus ``iteration`` (Dyna
  iterations done), ``model_loss`` (mean model loss over the last iteration's updates;
  empty at step 0), ``v_start`` (the critic's value of the start cell) and ``model_tv``
  (the model's mean total-variation error on the real transitions so far,
  :meth:`~vaml_ext.gridworld.dyna.DynaTrainer.model_error`; empty at step 0);
* ``tb/``       -- TensorBoard scalars ``eval/return``, ``train/model_loss``, ``train/model_tv``,
  ``train/v_start`` against env steps;
* ``ckpt/latest.pt`` (and the one before, ``ckpt/previous.pt``:
  :class:`~vaml_ext.runlog.ckpt.CheckpointStore`) -- written atomically after every
  evaluation round: the trainer's full state (model, policy and value tables, the
  four Adam states, the torch generator, the real-data buffer, the real and imagined
  environments' states, counters), the global torch/numpy/python RNG states, a copy of the
  evaluation rows so far and the wall-clock so far;
* ``done.json`` -- written last: ``final_return`` (the return at the last evaluation),
  ``env_steps, wall_time_s, n_evals, resumed`` (+ ``best_return, n_resumes, size, method,
  seed``).

One writer: the run holds :class:`~vaml_ext.runlog.lock.RunLock` on ``run_dir`` before it
writes anything; a second process on the same directory gets ``RunInUse`` at once.

Resume: if a checkpoint exists the run continues from it (``latest.pt``; if that one
does not load, it is set aside and ``previous.pt`` is used; if neither loads the run stops,
naming both, unless ``restart=True``). The evaluation file is cut
back to the rows with ``env_steps`` ≤ the checkpoint's (``EvalLog(keep_until=...)``); if
what is left differs from the checkpoint's copy of those rows (a torn last line, a lost
or edited file) it is rewritten from that copy. TensorBoard events after the checkpoint
are purged (``purge_step``). A run killed at any moment (even by ``SIGKILL``) and
restarted therefore produces the same evaluation rows as an uninterrupted run (same
values, same text, nothing lost or duplicated); only ``wall_time_s`` differs, and time
the killed process spent after its last checkpoint is not counted. If ``done.json``
exists the run is not repeated: its summary is returned.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path

import torch

from vaml_ext.checks import check_choice, check_int
from vaml_ext.gridworld.dyna import DynaConfig, DynaTrainer
from vaml_ext.gridworld.env import _check_size
from vaml_ext.gridworld.objectives import RUN_METHODS, VARIANTS
from vaml_ext.runlog.ckpt import CheckpointStore, check_checkpoint_config
from vaml_ext.runlog.lock import RunLock
from vaml_ext.runlog.progress import RunProgress
from vaml_ext.runlog.rng import capture_rng, restore_rng
from vaml_ext.runlog.rundir import (
    DONE_FILE,
    EVAL_FIELDS,
    EVAL_FILE,
    EvalLog,
    git_provenance,
    read_done,
    write_run_config,
)
from vaml_ext.runlog.tracking import finish_run, log_finished_run

CKPT_DIR = "ckpt"
TB_DIR = "tb"
EXTRA_FIELDS = ("iteration", "model_loss", "v_start", "model_tv")
CKPT_FORMAT = 1


def _validate(size, method, seed, env_steps, eval_every, dyna) -> DynaConfig:
    check_choice("method", method, RUN_METHODS)
    try:
        _check_size(size)
    except ValueError as e:
        raise ValueError(f"size: {e}") from None
    check_int("seed", seed, 0)
    check_int("env_steps", env_steps, 1)
    check_int("eval_every", eval_every, 1)
    if dyna is None:
        dyna = {}
    if not isinstance(dyna, dict):
        raise ValueError(f"dyna must be a mapping of Dyna options, got {type(dyna).__name__}")
    dyna = dict(dyna)
    for key, val in (("env_steps", env_steps), ("eval_every", eval_every)):
        if key in dyna and dyna.pop(key) != val:
            raise ValueError(f"dyna.{key} conflicts with the {key} argument; pass it as the argument only")
    if method in VARIANTS:  # an ablation: the base objective with some Dyna options fixed
        dyna.update(VARIANTS[method][1])
    return DynaConfig.from_dict(dict(dyna, env_steps=int(env_steps), eval_every=int(eval_every)))


def _csv_text(row: dict, fields) -> dict:
    """A row as ``csv.DictWriter`` writes it (``str`` of each cell)."""
    return {k: str(row.get(k, "")) for k in fields}


def _resume_eval_log(run_dir: Path, ckpt_steps: int, rows: list) -> EvalLog:
    """Cut the evaluation file back to the checkpoint (``EvalLog(keep_until=...)``); if what
    is left is not exactly the checkpoint's copy of its rows (a torn last line, a lost or
    edited file), rewrite it from that copy."""
    fields = list(EVAL_FIELDS) + list(EXTRA_FIELDS)
    try:
        log = EvalLog(run_dir, EXTRA_FIELDS, keep_until=ckpt_steps)
        with open(log.path, newline="") as f:
            ok = list(csv.DictReader(f)) == [_csv_text(r, fields) for r in rows]
    except (ValueError, KeyError, TypeError, csv.Error):
        ok = False
    if not ok:
        warnings.warn(
            f"{Path(run_dir) / EVAL_FILE} did not match checkpoint {ckpt_steps} env steps; "
            "rewritten from the checkpoint's copy of its rows",
            RuntimeWarning,
            stacklevel=3,
        )
        log = EvalLog(run_dir, EXTRA_FIELDS)
        for r in rows:
            log.write(r)
    return log


def run_gridworld(
    run_dir,
    size: int,
    method: str,
    seed: int,
    env_steps: int,
    eval_every: int,
    dyna: dict | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict:
    """Train one ``method``/``seed`` on the ``size``×``size`` room for ``env_steps`` real
    env steps, evaluating every ``eval_every`` (and at 0); ``dyna`` holds the other
    :class:`~vaml_ext.gridworld.dyna.DynaConfig` options. Resumes from its checkpoint
    if present; returns ``done.json``'s summary (immediately if the run is already done).
    ``restart=True`` starts an unfinished run over, setting its checkpoints aside.
    See the module docstring for the files and the resume guarantee.

    Raises ``ValueError`` naming the argument for an unknown method, an invalid size or
    seed, non-positive budgets, bad Dyna options, or a checkpoint of a different run;
    ``RunInUse`` if another process is writing ``run_dir``; ``NoUsableCheckpoint`` if no
    checkpoint loads; ``RunWriteError`` if a file cannot be written (e.g. a full disk).
    """
    cfg = _validate(size, method, seed, env_steps, eval_every, dyna)
    size, seed = int(size), int(seed)
    run_dir = Path(run_dir)
    if (run_dir / DONE_FILE).is_file():
        return read_done(run_dir) or {}
    with RunLock(run_dir):
        if (run_dir / DONE_FILE).is_file():  # finished while we looked
            return read_done(run_dir) or {}
        return _run_locked(run_dir, cfg, size, method, seed, env_steps, eval_every, progress, restart)


def _open_checkpoints(run_dir: Path, run_info: dict, restart: bool):
    """``(store, checkpoint or None)``; a checkpoint of another run is refused."""
    store = CheckpointStore(
        run_dir / CKPT_DIR, restart_hint="call run_gridworld(..., restart=True) (figure sweeps: --restart)"
    )
    if restart:
        store.set_aside_all()
    ckpt_path, ckpt = store.load(lambda p: torch.load(p, map_location="cpu", weights_only=True))
    if ckpt is not None:
        check_checkpoint_config(
            ckpt_path,
            {"format": ckpt.get("format"), **(ckpt.get("run") or {})},
            {"format": CKPT_FORMAT, **run_info},
            "Use another run_dir, or restart=True (figure sweeps: --restart) to set it aside and start over.",
        )
    return store, ckpt


def _eval_row(trainer: DynaTrainer, wall_s: float) -> dict:
    """One ``returns.csv`` row: the greedy return now, with the model's and critic's state."""
    return {
        "env_steps": trainer.env_steps,
        "return": float(trainer.evaluate()[0]),
        "wall_time_s": round(wall_s, 3),
        "iteration": trainer.it,
        "model_loss": "" if trainer.it == 0 else trainer.model_loss,
        "v_start": float(trainer.agent.V.detach()[0, trainer.spec.start]),
        "model_tv": "" if trainer.it == 0 else float(trainer.model_error()[0]),
    }


def _train(trainer: DynaTrainer, evaluate_and_log, checkpoint, prog) -> None:
    """Iterate to the budget: evaluations as they fall due, a checkpoint after each round of
    them and after trailing iterations without one (budget not a multiple of eval_every)."""
    unsaved = False
    while not trainer.finished:
        trainer.train_iteration()
        n_due = trainer.due_evaluations()
        for _ in range(n_due):
            evaluate_and_log()
        if n_due:
            checkpoint()
        elif prog is not None:
            prog.update(trainer.env_steps)
        unsaved = not n_due
    if unsaved:
        checkpoint()


def _run_locked(
    run_dir: Path,
    cfg: DynaConfig,
    size: int,
    method: str,
    seed: int,
    env_steps: int,
    eval_every: int,
    progress: bool,
    restart: bool,
) -> dict:
    run_info = {
        "backend": "gridworld",
        "env": f"gridworld{size}",
        "size": size,
        "method": method,
        "seed": seed,
        "budget": {"env_steps": int(env_steps), "eval_every": int(eval_every)},
        "dyna": cfg.to_dict(),
    }
    store, ckpt = _open_checkpoints(run_dir, run_info, restart)
    (run_dir / CKPT_DIR).mkdir(parents=True, exist_ok=True)
    if not (run_dir / "run.yaml").is_file():
        write_run_config(run_dir, dict(run_info, provenance=git_provenance()))

    objective = VARIANTS[method][0] if method in VARIANTS else method
    trainer = DynaTrainer(size, [objective], cfg, base_seed=seed)
    if ckpt is None:
        rows, wall0, n_resumes = [], 0.0, 0
        log = EvalLog(run_dir, EXTRA_FIELDS)  # fresh file (drops any stale rows)
    else:
        trainer.load_state_dict(ckpt["trainer"])
        restore_rng(ckpt["rng"])
        rows, wall0, n_resumes = list(ckpt["rows"]), float(ckpt["wall_time_s"]), int(ckpt["n_resumes"]) + 1
        log = _resume_eval_log(run_dir, trainer.env_steps, rows)

    from torch.utils.tensorboard import SummaryWriter

    # hide events a killed process logged after its checkpoint (all of them on a fresh start)
    tb = SummaryWriter(str(run_dir / TB_DIR), purge_step=trainer.env_steps + 1 if ckpt is not None else 0)
    prog = None
    if progress:
        prog = RunProgress(
            total_steps=cfg.env_steps, desc=f"gridworld{size}/{method}/seed{seed}", initial=trainer.env_steps
        )
    t_start = time.perf_counter()

    def wall() -> float:
        return wall0 + time.perf_counter() - t_start

    def evaluate_and_log() -> None:
        row = _eval_row(trainer, wall())
        ret = row["return"]
        log.write(row)
        rows.append(row)
        tb.add_scalar("eval/return", ret, trainer.env_steps)
        if trainer.it > 0:
            tb.add_scalar("train/model_loss", trainer.model_loss, trainer.env_steps)
            tb.add_scalar("train/model_tv", row["model_tv"], trainer.env_steps)
        tb.add_scalar("train/v_start", row["v_start"], trainer.env_steps)
        if prog is not None:
            prog.update(trainer.env_steps, ret)

    def checkpoint() -> None:
        tb.flush()
        store.save(
            {
                "format": CKPT_FORMAT,
                "run": run_info,
                "trainer": trainer.state_dict(),
                "rng": capture_rng(),
                "rows": rows,
                "wall_time_s": wall(),
                "n_resumes": n_resumes,
            }
        )

    try:
        if ckpt is None:
            evaluate_and_log()
            checkpoint()
        _train(trainer, evaluate_and_log, checkpoint, prog)
    finally:
        tb.close()
    if prog is not None:
        prog.close(final_return=rows[-1]["return"])
    # two-line summary + done.json (vaml_ext.runlog.tracking); W&B when $VAML_WANDB=1 (figure --wandb)
    summary = finish_run(
        rows,
        wall(),
        run_dir,
        tag=f"gridworld{size}/{method}/seed{seed}",
        extra={
            "env_steps": trainer.env_steps,
            "resumed": n_resumes > 0,
            "n_resumes": n_resumes,
            "size": size,
            "method": method,
            "seed": seed,
        },
    )
    log_finished_run({}, run_info, run_dir, rows, "env_steps", summary)
    return summary


__all__ = ["run_gridworld", "EXTRA_FIELDS"]
