"""Per-iteration model diagnostics for every SLBO variant (hook of patch 0006), like MBPO's ``va_model.csv``.

After each SLBO iteration's model phase (``slbo.n_model_iters`` updates) the patched loop
calls :class:`ModelDiagnostics`, which measures the model on held-out *real* transitions
-- ``n_heldout`` (1,000) of the dev set, drawn without replacement (all if fewer); upstream
collects it every stage (``rollout.n_dev_samples``) and never trains on it -- and writes one row to
``<log_dir>/model_diag.csv`` and TensorBoard ``va_model/*``:

* ``train_loss``: mean training objective of the phase's updates (for ``ma_l1`` that is the
  value-aware loss ``0.01 * mean |A|``; weight decay not included);
* ``mean_abs_adv``: mean ``|V(s') - V(f_φ(s, a))|`` with the current TRPO value net (paper
  Eq. 9, deterministic model), for every variant;
* ``nmse``: one-step normalised MSE ``mean_{i,j} ((f_φ(s_i, a_i) - s'_i)_j / σ_Δ,j)²``;
  ``nmse_ref``: the same for the constant predictor ``s + μ_Δ`` (what upstream's
  near-zero initial weights predict), so ``nmse / nmse_ref < 1`` means the model learned
  something beyond the mean state difference;
* ``max_abs_w_<k>``: largest ``|weight|`` of the model's k-th linear layer (0 = input);
* ``refits`` / ``refit_s``: Algorithm 2 value refits in this iteration and their seconds
  (0 for variants without refit), ``refits_total`` / ``refit_s_total`` since the run
  (re)started.

The last row's values also go to ``progress.csv`` (:meth:`ModelDiagnostics.progress_fields`).
It uses a private random generator and ``torch.no_grad`` only: upstream's random streams
and every network are untouched, so a run is bit-identical with and without it.
"""

from __future__ import annotations

import csv
import os
import time

import numpy as np
import torch
from torch import nn

#: columns ``progress.csv`` gains (values of the last model phase before the evaluation)
PROGRESS_FIELDS = ("model_mean_abs_adv", "model_nmse", "model_nmse_ref", "refits_total", "refit_s_total")


def _t(x, device=None):
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


class ModelDiagnostics:
    def __init__(
        self,
        model,
        vfn,
        normalizers,
        dev_set,
        value_refit=None,
        writer=None,
        log_dir=None,
        n_heldout: int = 1000,
        seed: int = 0,
        n_iters_per_stage: int = 20,
        resume: bool = False,
    ):
        self.model, self.vfn, self.normalizers, self.dev_set = model, vfn, normalizers, dev_set
        self.device = next(model.parameters()).device
        self.value_refit = value_refit
        self.writer = writer
        self.n_heldout = int(n_heldout)
        self.n_iters_per_stage = int(n_iters_per_stage)
        self.rng = np.random.default_rng(seed)  # private: upstream's np.random stream is untouched
        self.n_layers = len(linear_layers(model))
        self.fields = [
            "stage",
            "iter",
            "train_loss",
            "mean_abs_adv",
            "nmse",
            "nmse_ref",
            *[f"max_abs_w_{k}" for k in range(self.n_layers)],
            "refits",
            "refit_s",
            "refits_total",
            "refit_s_total",
            "wall_time_s",
        ]
        self.path = os.path.join(log_dir, "model_diag.csv") if log_dir else None
        if self.path and not (resume and os.path.exists(self.path)):
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writeheader()
        self._seen_refits, self._seen_refit_s = 0, 0.0
        self._t0 = time.time()
        self.last: dict[str, float] = {}

    def state_dict(self) -> dict[str, object]:
        """For a resumed run: the held-out sampler's generator, the last row (the next
        ``progress.csv`` row's model columns), the refit totals seen, the elapsed wall-clock."""
        return {
            "rng": self.rng.bit_generator.state,
            "last": dict(self.last),
            "seen_refits": self._seen_refits,
            "seen_refit_s": self._seen_refit_s,
            "wall_time_s": time.time() - self._t0,
        }

    def load_state_dict(self, state, keep_until_stage: int) -> None:
        """Restore :meth:`state_dict` (``None``: a checkpoint without it) and drop the
        ``model_diag.csv`` rows of stages after ``keep_until_stage`` (the checkpoint's stage:
        a run killed mid-stage wrote rows the resumed run writes again)."""
        if state is not None:
            self.rng.bit_generator.state = state["rng"]
            self.last = dict(state["last"])
            self._seen_refits, self._seen_refit_s = int(state["seen_refits"]), float(state["seen_refit_s"])
            self._t0 = time.time() - float(state["wall_time_s"])
        if self.path and os.path.exists(self.path):
            from vaml_ext.runlog.atomic import atomic_write

            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["stage"]) <= keep_until_stage]

            def write(f):
                w = csv.DictWriter(f, fieldnames=self.fields)
                w.writeheader()
                w.writerows(rows)

            atomic_write(self.path, write, mode="w")

    def _refit_totals(self):
        r = self.value_refit
        return (int(r.n_refits), float(r.seconds)) if r is not None else (0, 0.0)

    @torch.no_grad()
    def measure(self) -> dict[str, float]:
        """Held-out quantities of the current model and value net (no row written)."""
        out = {f"max_abs_w_{k}": float(m.weight.abs().max()) for k, m in enumerate(linear_layers(self.model))}
        n = len(self.dev_set)
        if n == 0:
            return {**out, "mean_abs_adv": float("nan"), "nmse": float("nan"), "nmse_ref": float("nan")}
        idx = np.arange(n) if n <= self.n_heldout else self.rng.choice(n, size=self.n_heldout, replace=False)
        batch = self.dev_set[idx]
        s, a, s_next = (_t(x, self.device) for x in (batch.state, batch.action, batch.next_state))
        pred = self.model(s, a)
        std = self.normalizers.diff.op_std.clamp_min(1e-6)
        ref = s + self.normalizers.diff.op_mean
        out["nmse"] = float((((pred - s_next) / std) ** 2).mean())
        out["nmse_ref"] = float((((ref - s_next) / std) ** 2).mean())
        out["mean_abs_adv"] = float((self.vfn(s_next) - self.vfn(pred)).abs().mean())
        return out

    def __call__(self, stage: int, it: int, train_losses) -> dict[str, float]:
        row: dict[str, float] = {
            "stage": stage,
            "iter": it,
            "train_loss": float(np.mean(train_losses)) if len(train_losses) else float("nan"),
        }
        row.update(self.measure())
        total, total_s = self._refit_totals()
        row.update(
            refits=total - self._seen_refits,
            refit_s=total_s - self._seen_refit_s,
            refits_total=total,
            refit_s_total=total_s,
            wall_time_s=time.time() - self._t0,
        )
        self._seen_refits, self._seen_refit_s = total, total_s
        if self.path:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(row)
        if self.writer is not None:
            step = stage * self.n_iters_per_stage + it
            for k, v in row.items():
                if k not in ("stage", "iter", "wall_time_s"):
                    self.writer.add_scalar(f"va_model/{k}", v, step)
        self.last = row
        return row

    def progress_fields(self) -> dict[str, object]:
        """``progress.csv`` columns (:data:`PROGRESS_FIELDS`): last model phase's values."""
        last: dict[str, object] = dict(self.last)
        return {
            "model_mean_abs_adv": last.get("mean_abs_adv", ""),
            "model_nmse": last.get("nmse", ""),
            "model_nmse_ref": last.get("nmse_ref", ""),
            "refits_total": last.get("refits_total", ""),
            "refit_s_total": last.get("refit_s_total", ""),
        }


def make_model_diagnostics(
    model,
    vfn,
    normalizers,
    dev_set,
    value_refit=None,
    writer=None,
    log_dir=None,
    seed: int = 0,
    n_iters_per_stage: int = 20,
    resume: bool = False,
    n_heldout: int = 1000,
) -> ModelDiagnostics:
    """Hook of patch 0006: the per-iteration diagnostics of the patched loop."""
    return ModelDiagnostics(
        model,
        vfn,
        normalizers,
        dev_set,
        value_refit,
        writer,
        log_dir,
        n_heldout=n_heldout,
        seed=seed,
        n_iters_per_stage=n_iters_per_stage,
        resume=resume,
    )


__all__ = ["ModelDiagnostics", "PROGRESS_FIELDS", "make_model_diagnostics", "linear_layers"]
