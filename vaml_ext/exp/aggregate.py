"""Aggregate a sweep into curves, a final-performance table, PoI over MLE, figures and a
report that sets each of the paper's claims (SPEC §7) next to the measured result.

    python -m vaml_ext.exp.aggregate <sweep_dir> [--out DIR] [--reps N]
        [--include-unfinished] [--seed S] [--max-points K]

Reads every run directory under ``sweep_dir`` (format: :mod:`vaml_ext.runlog.rundir`) and
writes to ``--out`` (default ``<sweep_dir>/report``):

* ``curves.csv`` -- ``env, method, env_steps, iqm, iqm_lo, iqm_hi, mean, mean_lo, mean_hi,
  n_seeds`` on a common env-step grid per env;
* ``final.csv``  -- per env and method: final return (last evaluation of each seed) IQM
  and mean with 95% CIs, seeds, the env steps of those last evaluations, and the AUC;
* ``poi.csv``    -- probability of improvement of each value-aware method over ``mle``,
  per env and over all envs (``env = all``), with 95% CIs;
* ``curves.png``, ``poi.png``, ``claims.json`` and ``report.md``.

In Python: ``aggregate(sweep_dir, out_dir=None, reps=2000, ...)`` returns the paths it
wrote and the tables (pandas DataFrames).

Statistics. Point estimates and 95% percentile CIs come from rliable's stratified
bootstrap over seeds (``rliable.library.get_interval_estimates``). The statistics are
rliable.metrics' ``aggregate_iqm``, ``aggregate_mean`` and ``probability_of_improvement``,
computed by the exact re-implementations :func:`iqm`, :func:`iqm_columns` and
:func:`probability_of_improvement` below (tests check them against rliable's; scipy's
per-call overhead made rliable's own functions ~50x slower inside the bootstrap).
Curves bootstrap all grid points of one env/method in one call; each grid point is
resampled independently (rliable's behaviour for a ``runs x 1 x points`` array), so the
CIs are pointwise. rliable draws its bootstrap indices from NumPy's global RNG: ``--seed``
seeds it (its previous state is restored afterwards).

Grid. Per env, the grid is the sorted union of the evaluation steps of its runs
(usually every seed shares them, so the grid is exactly those steps), thinned to at
most ``max_points`` of those steps. A run's value at a grid point is its **last
evaluation at or before that point**; a run counts at a grid point only between its
first and its last evaluation (a run does not extend past the steps it reached), so
``n_seeds`` may vary along a curve. AUC of a run: the mean of its grid values up to a
horizon every compared run reached (the area under the learning curve divided by its
length); the table's AUC uses the env's horizon (the last grid point every run of the
env reached).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vaml_ext.runlog import rundir
from vaml_ext.exp.claims import (BASELINES, FIGURE_ENVS, FIGURE_METHODS, MIN_SEEDS, ClaimData, Stat,
                                 canonical_env, evaluate_claims, norm_figure)

CI = 0.95


class AggregateError(ValueError):
    """Bad input (no runs, mixed figures, duplicate runs): the message says what and where."""


# ----------------------------------------------------------------------------- rliable
def rliable_modules():
    """``(rliable.library, rliable.metrics)``. rliable 1.2.0 passes ``random_state=`` to
    ``arch.bootstrap.IIDBootstrap``; arch 8 (the first release that imports with pandas 3)
    renamed that keyword ``seed`` and treats unknown keywords as data. Under arch >= 8 the
    old keyword is translated to ``seed`` (the meaning it had in arch 5-7)."""
    import arch
    import arch.bootstrap as arch_bs

    init = arch_bs.IIDBootstrap.__init__
    if int(arch.__version__.split(".")[0]) >= 8 and not getattr(init, "_random_state_compat", False):
        @functools.wraps(init)
        def __init__(self, *args, seed=None, random_state=None, **kwargs):
            init(self, *args, seed=random_state if seed is None else seed, **kwargs)
        __init__._random_state_compat = True
        arch_bs.IIDBootstrap.__init__ = __init__
    from rliable import library, metrics
    return library, metrics


# The statistics below are exact re-implementations of rliable.metrics' aggregate_iqm
# (scipy.stats.trim_mean(x, 0.25, axis=None)) and probability_of_improvement (Mann-Whitney
# U / (n_x n_y) per task, 0.5 for identical columns, averaged over tasks); the tests check
# them against rliable's on random data with ties. They are used inside the bootstrap
# because scipy's per-call overhead (~0.4 ms) made 2000 replicates of a 4-env sweep take
# about a minute; with these it takes seconds. The bootstrap itself is rliable's.
def iqm(x: np.ndarray) -> float:
    """IQM over all entries = ``rliable.metrics.aggregate_iqm``."""
    a = np.sort(np.ravel(x))
    cut = int(0.25 * a.size)
    return float(a[cut:a.size - cut].mean())


def iqm_columns(y: np.ndarray) -> np.ndarray:
    """``[runs, points]`` -> IQM over runs of every column (``aggregate_iqm`` per column)."""
    a = np.sort(y, axis=0)
    cut = int(0.25 * a.shape[0])
    return a[cut:a.shape[0] - cut].mean(axis=0)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """= ``rliable.metrics.probability_of_improvement``: ``[runs_x, tasks]``, ``[runs_y, tasks]``."""
    probs = []
    for j in range(scores_x.shape[1]):
        x, y = scores_x[:, j], scores_y[:, j]
        if np.array_equal(x, y):
            probs.append(0.5)
            continue
        gt = (x[:, None] > y[None, :]).sum()
        eq = (x[:, None] == y[None, :]).sum()
        probs.append((gt + 0.5 * eq) / (len(x) * len(y)))
    return float(np.mean(probs))


def _iqm_mean_fn(x: np.ndarray) -> np.ndarray:
    """``[runs, 1]`` -> ``[IQM, mean]`` (``aggregate_iqm``, ``aggregate_mean``)."""
    return np.array([iqm(x), np.mean(np.mean(x, axis=0))])


def _curve_fn(x: np.ndarray) -> np.ndarray:
    """``x``: ``[runs, 1, points]`` -> ``[iqm per point..., mean per point...]``."""
    y = x[:, 0, :]
    return np.concatenate([iqm_columns(y), y.mean(axis=0)])


def interval_estimates(score_dict: dict, func: Callable, reps: int):
    library, _ = rliable_modules()
    return library.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=CI)


# ----------------------------------------------------------------------------- runs
@dataclass
class Run:
    path: Path
    env: str
    method: str
    seed: object
    done: bool
    steps: np.ndarray
    returns: np.ndarray
    commit: str
    dirty: Optional[bool]

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    @property
    def last_step(self) -> float:
        return float(self.steps[-1])


def _seed_key(s):
    return (0, s, "") if isinstance(s, (int, float)) else (1, 0, str(s))


def _seed(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


@dataclass
class Loaded:
    runs: List[Run]
    unfinished: List[Run]          # not done (excluded unless include_unfinished; then also in runs)
    skipped: List[Tuple[str, str]]  # (path, reason)
    skipped_keys: List[tuple]       # (env, method, seed) of skipped runs whose run.yaml names them
    figure: Optional[str]
    figure_raw: object
    presets: List[str]
    backends: List[str]
    commits: Dict[str, int]
    dirty: int


def load_runs(sweep_dir: Path, include_unfinished: bool = False, warn=print) -> Loaded:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AggregateError(f"sweep dir {sweep_dir} does not exist or is not a directory")
    dirs = list(rundir.iter_run_dirs(sweep_dir))
    if not dirs:
        raise AggregateError(f"no runs under {sweep_dir}: no {rundir.RUN_FILE} found at any depth "
                             f"(a run directory is one holding {rundir.RUN_FILE}, see vaml_ext/runlog/rundir.py)")
    runs, unfinished, skipped, skipped_keys = [], [], [], []
    figures: Dict[Optional[str], List[str]] = {}
    fig_raw, presets, backends, commits, dirty = None, set(), set(), {}, 0
    seen: Dict[tuple, Path] = {}
    for d in dirs:
        rel = str(d.relative_to(sweep_dir)) or "."
        try:
            cfg = rundir.read_run_config(d)
        except Exception as e:  # noqa: BLE001 -- any parse error: skip with the reason
            skipped.append((rel, f"unreadable {rundir.RUN_FILE}: {e}"))
            warn(f"warning: skipping {rel}: unreadable {rundir.RUN_FILE} ({e})")
            continue
        if not isinstance(cfg, dict):
            skipped.append((rel, f"{rundir.RUN_FILE} is not a mapping"))
            warn(f"warning: skipping {rel}: {rundir.RUN_FILE} is not a mapping")
            continue
        figures.setdefault(norm_figure(cfg.get("figure")), []).append(rel)
        if fig_raw is None:
            fig_raw = cfg.get("figure")
        lacking = [k for k in ("env", "method", "seed") if cfg.get(k) in (None, "")]
        if lacking:
            skipped.append((rel, f"{rundir.RUN_FILE} lacks {', '.join(lacking)}"))
            warn(f"warning: skipping {rel}: {rundir.RUN_FILE} lacks {', '.join(lacking)}")
            continue
        rows = [r for r in rundir.read_eval(d)
                if math.isfinite(r.get("env_steps", float("nan"))) and math.isfinite(r.get("return", float("nan")))]
        if not rows:
            why = "empty eval.csv" if (d / rundir.EVAL_FILE).is_file() else "no eval.csv"
            skipped.append((rel, why))
            skipped_keys.append((canonical_env(cfg["env"]), str(cfg["method"]).strip().lower(), _seed(cfg["seed"])))
            warn(f"warning: skipping {rel}: {why}")
            continue
        by_step = {}
        for r in rows:  # a step evaluated twice keeps its last row
            by_step[r["env_steps"]] = r["return"]
        steps = np.array(sorted(by_step), dtype=float)
        prov = cfg.get("provenance") or {}
        run = Run(path=d, env=canonical_env(cfg["env"]), method=str(cfg["method"]).strip().lower(),
                  seed=_seed(cfg["seed"]), done=rundir.is_done(d), steps=steps,
                  returns=np.array([by_step[s] for s in steps], dtype=float),
                  commit=str(prov.get("commit", "unknown")), dirty=prov.get("dirty"))
        key = (run.env, run.method, run.seed)
        if key in seen:
            raise AggregateError(f"two runs for env={run.env} method={run.method} seed={run.seed}: "
                                 f"{seen[key]} and {d}; keep one per sweep")
        seen[key] = d
        if cfg.get("preset") is not None:
            presets.add(str(cfg["preset"]))
        if cfg.get("backend") is not None:
            backends.add(str(cfg["backend"]))
        if not run.done:
            unfinished.append(run)
            if not include_unfinished:
                continue
        runs.append(run)
        commits[run.commit] = commits.get(run.commit, 0) + 1
        dirty += bool(run.dirty)
    if len(figures) > 1:
        parts = "; ".join(f"{f or 'no figure'}: {len(v)} runs (e.g. {v[0]})" for f, v in figures.items())
        raise AggregateError(f"mixed figures in one sweep ({parts}); aggregate one figure per sweep dir")
    if not runs:
        raise AggregateError(
            f"no usable runs under {sweep_dir}: {len(dirs)} run dirs, {len(skipped)} skipped "
            f"(empty/invalid), {len(unfinished)} unfinished"
            + ("" if include_unfinished else " (pass --include-unfinished to use them)"))
    figure = next(iter(figures)) if figures else None
    return Loaded(runs, unfinished, skipped, skipped_keys, figure, fig_raw, sorted(presets), sorted(backends), commits, dirty)


# ----------------------------------------------------------------------------- grid / curves
def env_grid(runs: Sequence[Run], max_points: int) -> Tuple[np.ndarray, bool]:
    """(grid, shared): union of evaluation steps, thinned to ``max_points`` of them;
    ``shared``: every run evaluated at exactly the same steps."""
    union = np.unique(np.concatenate([r.steps for r in runs]))
    shared = all(np.array_equal(r.steps, runs[0].steps) for r in runs)
    if len(union) > max_points:
        union = union[np.unique(np.round(np.linspace(0, len(union) - 1, max_points)).astype(int))]
    return union, shared


def values_on_grid(run: Run, grid: np.ndarray) -> np.ndarray:
    """Last evaluation at or before each grid point; NaN before the first and after the
    last evaluation."""
    idx = np.searchsorted(run.steps, grid, side="right") - 1
    ok = (idx >= 0) & (grid <= run.last_step)
    return np.where(ok, run.returns[np.clip(idx, 0, None)], np.nan)


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4g}"


def _ci(p, lo, hi) -> str:
    return f"{_fmt(p)} [{_fmt(lo)}, {_fmt(hi)}]"


class SweepData(ClaimData):
    """Per-env grids and per-run grid values; bootstrapped stats on demand (cached)."""

    def __init__(self, runs: List[Run], reps: int, max_points: int):
        self.reps = reps
        self.by_env: Dict[str, Dict[str, List[Run]]] = {}
        for r in runs:
            self.by_env.setdefault(r.env, {}).setdefault(r.method, []).append(r)
        for env in self.by_env.values():
            for lst in env.values():
                lst.sort(key=lambda r: _seed_key(r.seed))
        self.envs = sorted(self.by_env, key=_env_order)
        methods = {m for e in self.by_env.values() for m in e}
        self.methods = sorted(methods, key=_method_order)
        self.grid, self.shared, self.values = {}, {}, {}
        for env, per_m in self.by_env.items():
            all_runs = [r for lst in per_m.values() for r in lst]
            self.grid[env], self.shared[env] = env_grid(all_runs, max_points)
            for r in all_runs:
                self.values[id(r)] = values_on_grid(r, self.grid[env])
        self._cache: Dict[tuple, Optional[Stat]] = {}

    def runs(self, env: str, method: str) -> List[Run]:
        return self.by_env.get(env, {}).get(method, [])

    def horizon(self, env: str, methods: Optional[Sequence[str]] = None) -> Optional[float]:
        methods = list(self.by_env.get(env, {})) if methods is None else methods
        rs = [r for m in methods for r in self.runs(env, m)]
        if not rs:
            return None
        reach = min(r.last_step for r in rs)
        g = self.grid[env][self.grid[env] <= reach]
        return float(g[-1]) if len(g) else None

    def auc(self, run: Run, horizon: float) -> float:
        if run.last_step < horizon:
            return float("nan")
        v = self.values[id(run)][self.grid[run.env] <= horizon]
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    def scores(self, env: str, method: str, metric: str, horizon: Optional[float] = None) -> np.ndarray:
        rs = self.runs(env, method)
        if metric == "final":
            x = [r.final for r in rs]
        elif metric == "auc":
            h = self.horizon(env) if horizon is None else horizon
            x = [self.auc(r, h) for r in rs] if h is not None else []
        else:
            raise ValueError(metric)
        x = np.asarray(x, dtype=float)
        return x[np.isfinite(x)]

    def stat(self, env: str, method: str, metric: str = "final", horizon: Optional[float] = None) -> Optional[Stat]:
        key = (env, method, metric, horizon)
        if key not in self._cache:
            x = self.scores(env, method, metric, horizon)
            if len(x) == 0:
                self._cache[key] = None
            else:
                pt, ci = interval_estimates({"s": x[:, None]}, _iqm_mean_fn, self.reps)
                p, c = pt["s"], ci["s"]
                self._cache[key] = Stat(iqm=float(p[0]), lo=float(c[0, 0]), hi=float(c[1, 0]), n=len(x),
                                        mean=float(p[1]))
                self._cache[key + ("mean",)] = (float(c[0, 1]), float(c[1, 1]))
        return self._cache[key]

    def mean_ci(self, env, method, metric="final", horizon=None) -> Tuple[float, float]:
        self.stat(env, method, metric, horizon)
        return self._cache.get((env, method, metric, horizon, "mean"), (float("nan"), float("nan")))

    # ---- tables
    def curves(self) -> List[dict]:
        rows = []
        for env in self.envs:
            grid = self.grid[env]
            for method in self.methods:
                rs = self.runs(env, method)
                if not rs:
                    continue
                V = np.stack([self.values[id(r)] for r in rs])          # [runs, points]
                mask = np.isfinite(V)
                groups: Dict[bytes, List[int]] = {}
                for j in range(len(grid)):
                    if mask[:, j].any():
                        groups.setdefault(mask[:, j].tobytes(), []).append(j)
                out = {}
                for key, cols in groups.items():
                    sel = np.frombuffer(key, dtype=bool)
                    X = V[sel][:, cols][:, None, :]
                    pt, ci = interval_estimates({"c": X}, _curve_fn, self.reps)
                    t = len(cols)
                    p, c = pt["c"], ci["c"]
                    for i, j in enumerate(cols):
                        out[j] = (p[i], c[0, i], c[1, i], p[t + i], c[0, t + i], c[1, t + i], int(sel.sum()))
                for j in sorted(out):
                    iqm, lo, hi, mean, mlo, mhi, n = out[j]
                    rows.append({"env": env, "method": method, "env_steps": _num(grid[j]),
                                 "iqm": iqm, "iqm_lo": lo, "iqm_hi": hi,
                                 "mean": mean, "mean_lo": mlo, "mean_hi": mhi, "n_seeds": n})
        return rows

    def final_table(self) -> List[dict]:
        rows = []
        for env in self.envs:
            h = self.horizon(env)
            for method in self.methods:
                rs = self.runs(env, method)
                if not rs:
                    continue
                s = self.stat(env, method, "final")
                mlo, mhi = self.mean_ci(env, method, "final")
                a = self.stat(env, method, "auc", h) if h is not None else None
                steps = [r.last_step for r in rs]
                rows.append({"env": env, "method": method, "n_seeds": s.n,
                             "seeds": " ".join(str(r.seed) for r in rs),
                             "iqm": s.iqm, "iqm_lo": s.lo, "iqm_hi": s.hi,
                             "mean": s.mean, "mean_lo": mlo, "mean_hi": mhi,
                             "final_steps_min": _num(min(steps)), "final_steps_max": _num(max(steps)),
                             "auc_horizon": _num(h) if h is not None else None,
                             "auc_iqm": a.iqm if a else float("nan"), "auc_lo": a.lo if a else float("nan"),
                             "auc_hi": a.hi if a else float("nan")})
        return rows

    def poi_table(self) -> Tuple[List[dict], List[str]]:
        """PoI of every value-aware method over mle: per env, and over all envs that have
        both (``env = all``; needs equal seed counts per env, so the first ``n`` seeds by
        seed id are used where counts differ -- said in the notes)."""
        notes, rows = [], []
        va = [m for m in self.methods if m not in BASELINES]
        if "mle" not in self.methods:
            return [], ["no `mle` runs in the sweep: no probability of improvement computed"]
        if not va:
            return [], ["no value-aware method besides `mle` in the sweep: no probability of improvement computed"]
        for m in va:
            envs = [e for e in self.envs if self.runs(e, m) and self.runs(e, "mle")]
            if not envs:
                notes.append(f"{m}: no env with both {m} and mle runs")
                continue
            dicts = {e: (self.scores(e, m, "final")[:, None], self.scores(e, "mle", "final")[:, None])
                     for e in envs}
            if len(envs) > 1:
                nx = min(len(dicts[e][0]) for e in envs)
                ny = min(len(dicts[e][1]) for e in envs)
                if any(len(dicts[e][0]) != nx or len(dicts[e][1]) != ny for e in envs):
                    notes.append(f"{m} over all envs: seed counts differ across envs; the first {nx} seeds of "
                                 f"{m} and {ny} of mle (by seed id) per env are used")
                dicts["all"] = (np.concatenate([dicts[e][0][:nx] for e in envs], axis=1),
                                np.concatenate([dicts[e][1][:ny] for e in envs], axis=1))
            pt, ci = interval_estimates(dicts, probability_of_improvement, self.reps)
            for e in list(envs) + (["all"] if "all" in dicts else []):
                rows.append({"env": e, "method": m, "baseline": "mle", "poi": float(pt[e]),
                             "poi_lo": float(np.ravel(ci[e])[0]), "poi_hi": float(np.ravel(ci[e])[1]),
                             "n_seeds": dicts[e][0].shape[0], "n_seeds_mle": dicts[e][1].shape[0],
                             "n_envs": len(envs) if e == "all" else 1})
        return rows, notes


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else x


def _env_order(e: str):
    import re

    m = re.fullmatch(r"grid(\d+)", e)
    return (0, int(m.group(1)), "") if m else (1, 0, e)


_METHOD_ORDER = ["mle", "slbo", "ma_direct_l1", "ma_direct_l2", "ma_l1_naive", "ma_l1", "ma_vaml"]


def _method_order(m: str):
    return (_METHOD_ORDER.index(m), m) if m in _METHOD_ORDER else (len(_METHOD_ORDER), m)


# ----------------------------------------------------------------------------- figures
def _colors(methods):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_curves(data: SweepData, curves: List[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(data.envs)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colors = _colors(data.methods)
    for ax, env in zip(axes.flat, data.envs):
        for m in data.methods:
            pts = [r for r in curves if r["env"] == env and r["method"] == m]
            if not pts:
                continue
            x = [p["env_steps"] for p in pts]
            ax.plot(x, [p["iqm"] for p in pts], color=colors[m], label=m, lw=1.6)
            ax.fill_between(x, [p["iqm_lo"] for p in pts], [p["iqm_hi"] for p in pts], color=colors[m], alpha=0.2,
                            lw=0)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("return (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_poi(poi: List[dict], methods: List[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(poi) + 1.4))
    for i, r in enumerate(poi):
        y = len(poi) - 1 - i
        ax.plot([r["poi_lo"], r["poi_hi"]], [y, y], color=colors[r["method"]], lw=6, alpha=0.45,
                solid_capstyle="butt")
        ax.plot([r["poi"]], [y], "o", color=colors[r["method"]])
    ax.set_yticks(range(len(poi)))
    ax.set_yticklabels([f"{r['env']}: {r['method']}" for r in reversed(poi)])
    ax.axvline(0.5, color="k", ls="--", lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("P(method > mle), final return, 95% CI")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- report
def _md_table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _run_counts(loaded: Loaded, data: SweepData, include_unfinished: bool) -> Tuple[str, List[str]]:
    """env x method table of finished / unfinished / skipped / missing seeds."""
    all_runs = {(r.env, r.method, r.seed): r for r in loaded.runs + loaded.unfinished}
    skipped = set(loaded.skipped_keys)
    keys = set(all_runs) | skipped
    envs = sorted({k[0] for k in keys}, key=_env_order)
    methods = sorted({k[1] for k in keys}, key=_method_order)
    seeds = sorted({k[2] for k in keys}, key=_seed_key)
    rows, notes = [], []
    n_missing = 0
    for e in envs:
        for m in methods:
            fin = [s for s in seeds if (e, m, s) in all_runs and all_runs[(e, m, s)].done]
            unf = [s for s in seeds if (e, m, s) in all_runs and not all_runs[(e, m, s)].done]
            skp = [s for s in seeds if (e, m, s) in skipped and (e, m, s) not in all_runs]
            mis = [s for s in seeds if (e, m, s) not in all_runs and (e, m, s) not in skipped]
            n_missing += len(mis)
            j = lambda xs: " ".join(map(str, xs)) if xs else "-"  # noqa: E731
            rows.append([e, m, f"{len(fin)} ({j(fin)})", f"{len(unf)} ({j(unf)})", f"{len(skp)} ({j(skp)})",
                         f"{len(mis)} ({j(mis)})"])
    n_fin = sum(r.done for r in all_runs.values())
    n_unf = len(all_runs) - n_fin
    head = (f"{len(all_runs)} run(s) with data: {n_fin} finished, {n_unf} unfinished "
            f"({'included' if include_unfinished else 'excluded'}); {n_missing} missing "
            f"(seeds {', '.join(map(str, seeds))} expected for every env × method present); "
            f"{len(loaded.skipped)} skipped (no usable data, listed below).")
    table = _md_table(["env", "method", "finished (seeds)", "unfinished (seeds)", "skipped (seeds)",
                       "missing (seeds)"], rows)
    fig = loaded.figure
    if fig in FIGURE_ENVS:
        no_env = [e for e in FIGURE_ENVS[fig] if e not in envs]
        no_method = [m for m in FIGURE_METHODS[fig] if m not in methods]
        if no_env or no_method:
            head += (f" Not in this sweep at all (of {fig}'s envs/methods): envs {', '.join(no_env) or '-'}; "
                     f"methods {', '.join(no_method) or '-'}.")
    return head + "\n\n" + table, notes


def write_report(path: Path, sweep_dir: Path, loaded: Loaded, data: SweepData, final: List[dict],
                 poi: List[dict], poi_notes: List[str], claims: List[dict], files: Dict[str, Optional[Path]],
                 reps: int, seed: int, include_unfinished: bool, max_points: int) -> None:
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "?"

    fig = loaded.figure
    L = [f"# Sweep report: `{sweep_dir}`", ""]
    L += [f"* figure: **{fig or 'not set in run.yaml'}**"
          + (f" (expected envs {', '.join(FIGURE_ENVS[fig])}; methods {', '.join(FIGURE_METHODS[fig])})"
             if fig in FIGURE_ENVS else ""),
          f"* preset: {', '.join(loaded.presets) or 'n/a'}; backend: {', '.join(loaded.backends) or 'n/a'}",
          f"* envs: {', '.join(data.envs)}; methods: {', '.join(data.methods)}",
          "* git commit(s) (run.yaml `provenance.commit`): "
          + ", ".join(f"`{c}` ({n} runs)" for c, n in sorted(loaded.commits.items(), key=lambda kv: -kv[1]))
          + (f"; {loaded.dirty} run(s) started from a dirty work tree" if loaded.dirty else ""),
          f"* statistics: rliable {ver('rliable')} (arch {ver('arch')}) stratified bootstrap, {reps} reps, "
          f"{int(CI * 100)}% percentile CIs, seed {seed}; generated {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    counts, _ = _run_counts(loaded, data, include_unfinished)
    L += ["## Runs", "", counts, ""]
    if loaded.skipped:
        L += ["Skipped run directories:", ""] + [f"* `{p}`: {why}" for p, why in loaded.skipped] + [""]
    unf = [r for r in loaded.unfinished]
    if unf:
        L += [f"Unfinished runs ({'included' if include_unfinished else 'excluded; --include-unfinished uses them'}):",
              ""] + [f"* `{r.path.relative_to(sweep_dir)}`: {r.env}/{r.method} seed {r.seed}, "
                     f"{len(r.steps)} evaluations, last at {_num(r.last_step)} env steps" for r in unf] + [""]

    L += ["## Final performance", "",
          "Final return = last evaluation of each seed. AUC = mean return over the env's grid up to "
          "the horizon every run of the env reached.", ""]
    L.append(_md_table(
        ["env", "method", "seeds", "final IQM [95% CI]", "final mean [95% CI]", "final env steps", "AUC IQM [95% CI]"],
        [[r["env"], r["method"], r["n_seeds"], _ci(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
          _ci(r["mean"], r["mean_lo"], r["mean_hi"]),
          f"{r['final_steps_min']}" + (f"–{r['final_steps_max']}" if r["final_steps_max"] != r["final_steps_min"] else ""),
          _ci(r["auc_iqm"], r["auc_lo"], r["auc_hi"]) + (f" @{r['auc_horizon']}" if r["auc_horizon"] is not None else "")]
         for r in final]))
    single = [f"{r['env']}/{r['method']}" for r in final if r["n_seeds"] == 1]
    if single:
        L += ["", f"**One seed only** for {', '.join(single)}: the bootstrap has nothing to resample, "
                  "so those CIs are degenerate (a single point) and say nothing about uncertainty."]
    few = [f"{r['env']}/{r['method']}" for r in final if 1 < r["n_seeds"] < MIN_SEEDS]
    if few:
        L += ["", f"Fewer than {MIN_SEEDS} seeds for {', '.join(few)}: CIs are unreliable; claims treat them "
                  "as inconclusive."]
    L += ["", "## Probability of improvement over MLE", ""]
    if poi:
        L.append(_md_table(["env", "method", "P(method > mle) [95% CI]", "seeds (method / mle)"],
                           [[r["env"], r["method"], _ci(r["poi"], r["poi_lo"], r["poi_hi"]),
                             f"{r['n_seeds']} / {r['n_seeds_mle']}"] for r in poi]))
    L += [""] + [f"* {n}" for n in poi_notes] + ([""] if poi_notes else [])

    L += ["## The paper's claims vs this sweep", ""]
    if not fig:
        L.append("run.yaml sets no `figure`: no claims evaluated.")
    elif not claims:
        L.append(f"No claims registered for figure `{fig}` (vaml_ext/exp/claims.py).")
    else:
        L.append(_md_table(["#", "paper's claim", "how we test it", "verdict", "measured (IQM [95% CI])"],
                           [[c["id"], c["claim"], c["rule"], f"**{c['verdict']}**", c["evidence"]] for c in claims]))
        L += ["", f"Verdict rule: two methods differ on an env only if their {int(CI * 100)}% CIs are disjoint; "
                  f"fewer than {MIN_SEEDS} seeds or a missing env/method makes a comparison inconclusive; "
                  "a claim holds if every env it covers supports it, does not hold if any contradicts it "
                  "(details: vaml_ext/exp/claims.py)."]
    L += ["", "## Figures", ""]
    if files.get("curves_png"):
        L.append(f"![return curves]({Path(files['curves_png']).name})")
    if files.get("poi_png"):
        L += ["", f"![probability of improvement]({Path(files['poi_png']).name})"]
    else:
        L += ["", "No PoI figure (no probability of improvement computed, see above)."]
    shared = [e for e in data.envs if data.shared[e]]
    L += ["", "## Method notes", "",
          f"* Grid: per env, the union of evaluation steps (at most {max_points} points). "
          + (f"All runs share their evaluation steps on: {', '.join(shared)}. " if shared else "")
          + ("Runs with different evaluation steps on: " + ", ".join(e for e in data.envs if not data.shared[e])
             + " -- there a run's value at a grid point is its last evaluation at or before that point. "
             if len(shared) < len(data.envs) else "")
          + "A run counts at a grid point only between its first and last evaluation (`n_seeds` in curves.csv).",
          "* Curves: IQM/mean over seeds per grid point with pointwise bootstrap CIs (each point resampled "
          "independently, rliable's stratified bootstrap over a runs × 1 × points array).",
          "* Files: " + ", ".join(f"`{Path(p).name}`" for k, p in files.items() if p and k != "report"), ""]
    path.write_text("\n".join(L))


# ----------------------------------------------------------------------------- entry
def aggregate(sweep_dir, out_dir=None, reps: int = 2000, include_unfinished: bool = False, seed: int = 0,
              max_points: int = 250, log: Callable[[str], None] = print, plots: bool = True) -> dict:
    """Aggregate ``sweep_dir``; write the report files to ``out_dir`` (default
    ``<sweep_dir>/report``). Returns the written paths (``out_dir``, ``report``,
    ``curves_csv``, ``final_csv``, ``poi_csv``, ``claims_json``, ``curves_png``,
    ``poi_png`` -- None where not written), the tables (``curves``, ``final``, ``poi`` as
    pandas DataFrames), ``claims`` (list of dicts), ``warnings``, ``notes`` and run
    counts. Raises :class:`AggregateError` on bad input."""
    import pandas as pd

    if reps < 1:
        raise AggregateError(f"--reps must be >= 1, got {reps}")
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    warnings: List[str] = []

    def warn(msg):
        warnings.append(msg)
        log(msg)

    loaded = load_runs(sweep_dir, include_unfinished, warn)
    if loaded.unfinished and not include_unfinished:
        warn(f"note: {len(loaded.unfinished)} unfinished run(s) excluded (no {rundir.DONE_FILE}); "
             "--include-unfinished uses them")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        data = SweepData(loaded.runs, reps, max_points)
        curves = data.curves()
        final = data.final_table()
        poi, poi_notes = data.poi_table()
        claims = evaluate_claims(loaded.figure, data)
    finally:
        np.random.set_state(state)

    out.mkdir(parents=True, exist_ok=True)
    curve_cols = ["env", "method", "env_steps", "iqm", "iqm_lo", "iqm_hi", "mean", "mean_lo", "mean_hi", "n_seeds"]
    final_cols = ["env", "method", "n_seeds", "seeds", "iqm", "iqm_lo", "iqm_hi", "mean", "mean_lo", "mean_hi",
                  "final_steps_min", "final_steps_max", "auc_horizon", "auc_iqm", "auc_lo", "auc_hi"]
    poi_cols = ["env", "method", "baseline", "poi", "poi_lo", "poi_hi", "n_seeds", "n_seeds_mle", "n_envs"]
    tables = {"curves": pd.DataFrame(curves, columns=curve_cols), "final": pd.DataFrame(final, columns=final_cols),
              "poi": pd.DataFrame(poi, columns=poi_cols)}
    files: Dict[str, Optional[Path]] = {"curves_csv": out / "curves.csv", "final_csv": out / "final.csv",
                                        "poi_csv": out / "poi.csv", "claims_json": out / "claims.json",
                                        "curves_png": None, "poi_png": None}
    tables["curves"].to_csv(files["curves_csv"], index=False)
    tables["final"].to_csv(files["final_csv"], index=False)
    tables["poi"].to_csv(files["poi_csv"], index=False)
    files["claims_json"].write_text(json.dumps(claims, indent=2) + "\n")
    title = f"{sweep_dir.name}" + (f" ({loaded.figure})" if loaded.figure else "")
    if plots:
        files["curves_png"] = out / "curves.png"
        plot_curves(data, curves, files["curves_png"], title)
        if poi:
            files["poi_png"] = out / "poi.png"
            plot_poi(poi, data.methods, files["poi_png"], title)
    files["report"] = out / "report.md"
    write_report(files["report"], sweep_dir, loaded, data, final, poi, poi_notes, claims, files, reps, seed,
                 include_unfinished, max_points)

    n_unf_used = sum(not r.done for r in loaded.runs)
    result = {"out_dir": out, **files, **tables, "claims": claims, "warnings": warnings, "notes": poi_notes,
              "figure": loaded.figure, "n_runs": len(loaded.runs), "n_unfinished": len(loaded.unfinished),
              "n_unfinished_used": n_unf_used, "skipped": loaded.skipped,
              "unfinished": [str(r.path) for r in loaded.unfinished]}
    return result


def _summary(res: dict) -> str:
    f = res["final"]
    lines = [f"aggregated {res['n_runs']} runs ({res['n_unfinished_used']} unfinished used, "
             f"{res['n_unfinished'] - res['n_unfinished_used']} unfinished excluded, {len(res['skipped'])} skipped); "
             f"figure {res['figure'] or 'n/a'}"]
    for _, r in f.iterrows():
        lines.append(f"  {r['env']:>12} {r['method']:<14} final IQM {_ci(r['iqm'], r['iqm_lo'], r['iqm_hi'])} "
                     f"(n={r['n_seeds']})")
    for c in res["claims"]:
        lines.append(f"  claim {c['id']}: {c['verdict']} -- {c['claim']}")
    lines += [f"  {n}" for n in res["notes"]]
    lines.append(f"report: {res['report']}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaml_ext.exp.aggregate",
                                description="Aggregate a sweep directory into curves, tables, PoI, figures and "
                                            "a report that checks the paper's claims.")
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output dir (default <sweep_dir>/report)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    p.add_argument("--include-unfinished", action="store_true", help="also use runs without done.json")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--max-points", type=int, default=250, help="max grid points per env curve (default 250)")
    a = p.parse_args(argv)
    try:
        res = aggregate(a.sweep_dir, a.out, reps=a.reps, include_unfinished=a.include_unfinished, seed=a.seed,
                        max_points=a.max_points, log=lambda m: print(m, file=sys.stderr))
    except AggregateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_summary(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
