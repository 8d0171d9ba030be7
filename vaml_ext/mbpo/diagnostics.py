"""Per-model-training diagnostics for every model loss, ``mle`` included (issue: logging).

After each model training: validation MSE (upstream's score), mean |model advantage|
on the validation split (the value-aware score, paper Eq. 9), number of refits and
refit seconds so far. Written to mbrl's CSV logger (group ``va_model`` ->
``va_model.csv``), to TensorBoard (``<work_dir>/tb``, ``va_model/<column>``) and, with
``overrides.wandb=true``, to Weights & Biases (:mod:`vaml_ext.runlog.tracking`). The console
lines of every mbrl log group use the CSV column names as labels
(:func:`readable_log_formats`), so the terminal, the CSV files and TensorBoard share one
vocabulary (README, "Diagnostics").

Nothing here may change the run: computations are under ``torch.no_grad`` inside
``torch.random.fork_rng`` (global RNG restored) with a private generator for model
samples, so ``model_loss=mle`` runs are bit-identical with and without this plugin.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from mbrl.util.plugins import Callback

from vaml_ext.mbpo.model_loss import value_aware_terms
from vaml_ext.mbpo.values import make_estimator

LOG_GROUP = "va_model"
#: (CSV column, console label, type): the label is the column name itself.
LOG_FORMAT = [
    ("env_step", "env_step", "int"),
    ("model_train_calls", "model_train_calls", "int"),
    ("val_mse", "val_mse", "float"),
    ("val_mean_abs_advantage", "val_mean_abs_advantage", "float"),
    ("refits_total", "refits_total", "int"),
    ("refit_s_total", "refit_s_total", "float"),
    ("model_train_seconds", "model_train_seconds", "float"),
]


def _upstream_log_formats():
    """mbrl-lib's console formats of the groups an MBPO run prints (``results``,
    ``model_train``, SAC's ``train``/``eval``): the lists its Logger groups hold."""
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.constants
    import mbrl.models.model_trainer as model_trainer
    import mbrl.util.logger as logger

    return [
        mbpo.MBPO_LOG_FORMAT,
        mbrl.constants.EVAL_LOG_FORMAT,
        model_trainer.MODEL_LOG_FORMAT,
        logger.SAC_TRAIN_LOG_FORMAT,
        logger.EVAL_LOG_FORMAT,
    ]


def readable_log_formats() -> None:
    """Relabel mbrl-lib's console columns with their CSV column names
    (``| results | S: 199 | R: 36.0 ...`` -> ``| results | env_step: 199 | episode_reward: 36.0 ...``).

    The format lists are edited in place: mbrl's ``MetersGroup`` keeps a reference to the
    list it was registered with, so groups registered before this call print the new
    labels too. Only labels change -- CSV columns and values are untouched. Idempotent.
    """
    for fmt in _upstream_log_formats():
        fmt[:] = [(key, key, kind) for key, _label, kind in fmt]


class ValueAwareDiagnostics(Callback):
    def __init__(
        self,
        value: str,
        refit=None,
        num_samples: int = 1,
        max_batches: int = 8,
        tensorboard: bool = True,
        wandb_opts=None,
    ):
        self.value = value
        self.refit = refit
        self.num_samples = num_samples
        self.max_batches = max_batches
        self.tensorboard = tensorboard
        self.calls = 0
        self.writer = None
        self.wandb_opts = wandb_opts
        self.wandb = None
        self.history: list = []
        self._t0 = 0.0

    def on_train_begin(self, ctx):
        if ctx.logger is not None:
            ctx.logger.register_group(LOG_GROUP, LOG_FORMAT, color="cyan", dump_frequency=1)
        if self.tensorboard and ctx.work_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(os.path.join(ctx.work_dir, "tb"))
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                self.writer = None
        if self.wandb_opts is not None and ctx.work_dir:
            from vaml_ext.runlog.rundir import plain_config
            from vaml_ext.runlog.tracking import start_wandb

            self.wandb = start_wandb(self.wandb_opts, plain_config(ctx.cfg), ctx.work_dir)

    def state_dict(self):
        return {"calls": self.calls, "history": list(self.history)}

    def load_state_dict(self, st):
        self.calls, self.history = st["calls"], list(st["history"])

    def on_model_train_begin(self, ctx):
        import time

        self._t0 = time.perf_counter()

    @torch.no_grad()
    def _scores(self, ctx):
        datasets = ctx.model_datasets
        val = datasets[1] if datasets else None
        if val is None or val.num_stored == 0:
            val = datasets[0] if datasets else None
        if val is None:
            return float("nan"), float("nan")
        dyn = ctx.dynamics_model
        estimator = make_estimator(self.value, ctx.agent.sac_agent)
        gen = torch.Generator(device=dyn.device)
        gen.manual_seed(int(ctx.cfg.seed) + self.calls)
        mses, maas = [], []
        # restore every RNG we might draw from (CPU, and CUDA when the agent runs there)
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
            for i, batch in enumerate(val):
                if i >= self.max_batches:
                    break
                score, _ = dyn.eval_score(batch)
                mses.append(score.mean().item())
                terms = value_aware_terms(dyn, batch, estimator, self.num_samples, gen)
                maas.append(terms["advantage"].abs().mean().item())
        return float(np.mean(mses)), float(np.mean(maas))

    def on_model_train_end(self, ctx):
        import time

        train_seconds = time.perf_counter() - self._t0
        self.calls += 1
        was_training = ctx.dynamics_model.training
        mse, maa = self._scores(ctx)
        ctx.dynamics_model.train(was_training)
        row = {
            "env_step": ctx.env_steps,
            "model_train_calls": self.calls,
            "val_mse": mse,
            "val_mean_abs_advantage": maa,
            "refits_total": self.refit.refits if self.refit else 0,
            "refit_s_total": self.refit.seconds if self.refit else 0.0,
            "model_train_seconds": train_seconds,
        }
        self.history.append(row)
        if ctx.logger is not None:
            ctx.logger.log_data(LOG_GROUP, row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "env_step":
                    self.writer.add_scalar(f"{LOG_GROUP}/{k}", v, ctx.env_steps)
            self.writer.flush()
        if self.wandb is not None:
            self.wandb.log({f"{LOG_GROUP}/{k}": v for k, v in row.items() if k != "env_step"}, ctx.env_steps)

    def on_epoch_end(self, ctx):
        if self.writer is not None and "eval_reward" in ctx.extras:
            self.writer.add_scalar("eval/episode_reward", ctx.extras["eval_reward"], ctx.env_steps)
            self.writer.flush()
        if self.wandb is not None and "eval_reward" in ctx.extras:
            self.wandb.log({"eval/episode_reward": ctx.extras["eval_reward"], "epoch": ctx.epoch}, ctx.env_steps)

    def on_train_end(self, ctx):
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            summary = {"best_eval_reward": ctx.best_eval_reward, "env_steps": ctx.env_steps + 1}
            if "eval_reward" in ctx.extras:
                summary["final_eval_reward"] = ctx.extras["eval_reward"]
            self.wandb.finish(summary)
            self.wandb = None
