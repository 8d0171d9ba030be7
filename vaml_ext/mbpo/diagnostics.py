"""Per-model-training diagnostics for every model loss, ``mle`` included (issue: logging).

After each model training: validation MSE (upstream's score), mean |model advantage|
on the validation split (the value-aware score, paper Eq. 9), number of refits and
refit seconds so far. Written to mbrl's CSV logger (group ``va_model`` ->
``va_model.csv``) and to TensorBoard (``<work_dir>/tb``).

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
LOG_FORMAT = [
    ("env_step", "S", "int"),
    ("model_train_calls", "MT", "int"),
    ("val_mse", "VMSE", "float"),
    ("val_mean_abs_advantage", "VMAA", "float"),
    ("refits", "NREF", "int"),
    ("refit_seconds", "TREF", "float"),
    ("model_train_seconds", "TMOD", "float"),
]


class ValueAwareDiagnostics(Callback):
    def __init__(self, value: str, refit=None, num_samples: int = 1, max_batches: int = 8,
                 tensorboard: bool = True):
        self.value = value
        self.refit = refit
        self.num_samples = num_samples
        self.max_batches = max_batches
        self.tensorboard = tensorboard
        self.calls = 0
        self.writer = None
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
            "refits": self.refit.refits if self.refit else 0,
            "refit_seconds": self.refit.seconds if self.refit else 0.0,
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

    def on_epoch_end(self, ctx):
        if self.writer is not None and "eval_reward" in ctx.extras:
            self.writer.add_scalar("eval/episode_reward", ctx.extras["eval_reward"], ctx.env_steps)
            self.writer.flush()

    def on_train_end(self, ctx):
        if self.writer is not None:
            self.writer.close()
