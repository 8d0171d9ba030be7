"""What every MBPO run records, split by job and ordered by one callback.

* :class:`RunClock` -- the run's wall-clock, resumes included;
* :class:`ReturnsLog` -- ``<work_dir>/returns.csv``, one row per evaluation in the
  run-directory format of :mod:`vaml_ext.runlog.rundir` (``env_steps`` = loop env steps so
  far, as mbrl's ``results.csv`` counts them), refilling mbrl's ``results.csv`` after a resume,
  and the two-line end-of-run summary with ``done.json``;
* :class:`ProgressLine` -- ``overrides.progress_bar=true``: env steps, latest return, ETA;
* :class:`vaml_ext.mbpo.checkpoint.Checkpointer` -- checkpoint/resume;
* :class:`RunRecorder` -- the one plugin callback that drives them in the order a resume
  needs: restore before ``returns.csv`` is cut back to the checkpoint, and at each evaluation
  the row written before the checkpoint that must include it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mbrl.util.plugins import Callback

from vaml_ext.mbpo.checkpoint import Checkpointer
from vaml_ext.runlog.progress import RunProgress
from vaml_ext.runlog.rundir import EvalLog, read_csv_rows, read_eval


class RunClock:
    """Seconds of training so far: this process's plus those before the last resume."""

    def __init__(self):
        self._t0 = time.perf_counter()
        self._offset = 0.0

    def wall_time(self) -> float:
        return self._offset + time.perf_counter() - self._t0

    def restart_from(self, seconds: float) -> None:
        self._offset, self._t0 = float(seconds), time.perf_counter()


class ReturnsLog:
    """``returns.csv`` (and mbrl's ``results.csv`` after a resume) and the end-of-run summary."""

    FIELDS = ("epoch", "rollout_length", "updates_made")

    def __init__(self, clock: RunClock):
        self.clock = clock
        self.log: EvalLog | None = None

    def begin(self, ctx, keep_until) -> None:
        self.log = EvalLog(ctx.work_dir, extra_fields=self.FIELDS, keep_until=keep_until)
        if keep_until is not None and ctx.logger is not None:
            import mbrl.constants

            for r in read_eval(Path(ctx.work_dir)):  # refill mbrl's results.csv (opened with "w")
                ctx.logger.log_data(
                    mbrl.constants.RESULTS_LOG_NAME,
                    {
                        "epoch": int(r["epoch"]),
                        "env_step": int(r["env_steps"]) - 1,
                        "episode_reward": r["return"],
                        "rollout_length": int(r["rollout_length"]),
                    },
                )

    def write(self, ctx, ret: float) -> None:
        assert self.log is not None, "begin() first"
        self.log.write(
            {
                "env_steps": int(ctx.env_steps) + 1,
                "return": ret,
                "wall_time_s": round(self.clock.wall_time(), 3),
                "epoch": ctx.epoch,
                "rollout_length": ctx.rollout_length,
                "updates_made": ctx.updates_made,
            }
        )

    def finish(self, ctx) -> None:
        from vaml_ext.runlog.tracking import finish_run

        finish_run(
            read_csv_rows(Path(ctx.work_dir) / "returns.csv"),
            self.clock.wall_time(),
            ctx.work_dir,  # 2-line summary
            tag=os.environ.get("VAML_RUN_TAG", "mbpo"),
            extra={"best_eval_reward": float(ctx.best_eval_reward)},
        )


class ProgressLine:
    """``overrides.progress_bar=true``: a progress line with ETA (nothing otherwise)."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)
        self.bar: RunProgress | None = None

    def begin(self, ctx) -> None:
        if self.enabled:
            o = ctx.cfg.overrides
            desc = os.environ.get("VAML_RUN_TAG") or f"{o.env} {o.get('model_loss', 'mle')} seed{ctx.cfg.seed}"
            self.bar = RunProgress(int(o.num_steps), desc=desc, initial=ctx.env_steps)

    def update(self, steps: int, ret: float) -> None:
        if self.bar is not None:
            self.bar.update(steps, ret)

    def close(self, resumed_from) -> None:
        if self.bar is not None:
            self.bar.close(extra=f"resumed from env step {resumed_from}" if resumed_from is not None else "")


class RunRecorder(Callback):
    """returns.csv + checkpoint/resume + progress for one MBPO run, in that order per hook."""

    def __init__(self, every: int = 0, resume: bool = True, progress: bool = False, stateful=()):
        self.clock = RunClock()
        self.checkpointer = Checkpointer(every, resume, stateful, clock=self.clock)
        self.returns = ReturnsLog(self.clock)
        self.progress = ProgressLine(progress)

    def on_train_begin(self, ctx):
        keep_until = self.checkpointer.begin(ctx)  # restores the loop's state when resuming
        self.returns.begin(ctx, keep_until)
        self.progress.begin(ctx)

    def on_epoch_end(self, ctx):
        ret = float(ctx.extras.get("eval_reward", float("nan")))
        self.returns.write(ctx, ret)  # before the checkpoint, whose resume keeps this row
        self.checkpointer.maybe_save(ctx)
        self.progress.update(int(ctx.env_steps) + 1, ret)

    def on_train_end(self, ctx):
        self.progress.close(self.checkpointer.resumed_from)
        self.returns.finish(ctx)
        self.checkpointer.end()
