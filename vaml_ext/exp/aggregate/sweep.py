"""Per-env evaluation grids and the bootstrapped tables (curves, final performance, PoI).

Grid. Per env, the grid is the sorted union of the evaluation steps of its runs
(usually every seed shares them, so the grid is exactly those steps), thinned to at
most ``max_points`` of those steps. A run's value at a grid point is its **last
evaluation at or before that point**; a run counts at a grid point only between its
first and its last evaluation, so ``n_seeds`` may vary along a curve. AUC of a run: the
mean of its grid values up to a horizon every compared run reached.

Curves bootstrap all grid points of one env/method in one call; each grid point is
resampled independently (rliable's behaviour for a ``runs x 1 x points`` array), so the
CIs are pointwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from vaml_ext.exp.aggregate.loading import Run, _seed_key
from vaml_ext.exp.aggregate.stats import (
    CI,
    curve_fn,
    interval_estimates,
    iqm,
    iqm_columns,
    iqm_mean_fn,
    probability_of_improvement,
)
from vaml_ext.exp.claims import BASELINES, ClaimData, Stat, cell_reading, compare, learned


def iqm_stat(x: np.ndarray, reps: int) -> tuple[Stat, tuple[float, float]]:
    """IQM of the scores ``x`` (one per seed) with its 95% stratified-bootstrap CI, and the
    mean's CI; the bootstrap draws from NumPy's global RNG (seed it for a repeatable CI)."""
    pt, ci = interval_estimates({"s": np.asarray(x, float)[:, None]}, iqm_mean_fn, reps)
    p, c = pt["s"], ci["s"]
    stat = Stat(iqm=float(p[0]), lo=float(c[0, 0]), hi=float(c[1, 0]), n=len(x), mean=float(p[1]))
    return stat, (float(c[0, 1]), float(c[1, 1]))


def env_grid(runs: Sequence[Run], max_points: int) -> tuple[np.ndarray, bool]:
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


class SweepData(ClaimData):
    """Per-env grids and per-run grid values; bootstrapped stats on demand (cached)."""

    def __init__(self, runs: list[Run], reps: int, max_points: int):
        self.reps = reps
        self.by_env: dict[str, dict[str, list[Run]]] = {}
        for r in runs:
            self.by_env.setdefault(r.env, {}).setdefault(r.method, []).append(r)
        for per_method in self.by_env.values():
            for lst in per_method.values():
                lst.sort(key=lambda r: _seed_key(r.seed))
        self.envs = sorted(self.by_env, key=_env_order)
        methods = {m for e in self.by_env.values() for m in e}
        self.methods = sorted(methods, key=_method_order)
        self.grid: dict[str, np.ndarray] = {}
        self.shared: dict[str, bool] = {}
        self.values: dict[int, np.ndarray] = {}
        for env, per_m in self.by_env.items():
            all_runs = [r for lst in per_m.values() for r in lst]
            self.grid[env], self.shared[env] = env_grid(all_runs, max_points)
            for r in all_runs:
                self.values[id(r)] = values_on_grid(r, self.grid[env])
        self._cache: dict[tuple, Stat | None] = {}
        self._mean_ci: dict[tuple, tuple[float, float]] = {}

    def runs(self, env: str, method: str) -> list[Run]:
        return self.by_env.get(env, {}).get(method, [])

    def horizon(self, env: str, methods: Sequence[str] | None = None) -> float | None:
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

    def scores(self, env: str, method: str, metric: str, horizon: float | None = None) -> np.ndarray:
        rs = self.runs(env, method)
        if metric == "final":
            x = [r.final for r in rs]
        elif metric == "auc":
            h = self.horizon(env) if horizon is None else horizon
            x = [self.auc(r, h) for r in rs] if h is not None else []
        else:
            raise ValueError(metric)
        arr = np.asarray(x, dtype=float)
        return arr[np.isfinite(arr)]

    def stat(self, env: str, method: str, metric: str = "final", horizon: float | None = None) -> Stat | None:
        key = (env, method, metric, horizon)
        if key not in self._cache:
            x = self.scores(env, method, metric, horizon)
            if len(x) == 0:
                self._cache[key] = None
            else:
                self._cache[key], self._mean_ci[key] = iqm_stat(x, self.reps)
        return self._cache[key]

    def initial(self, env: str, method: str) -> Stat | None:
        """IQM of each run's first evaluation (the initial policy's return) with its CI."""
        key = (env, method, "initial", None)
        if key not in self._cache:
            x = np.asarray([r.returns[0] for r in self.runs(env, method) if len(r.returns)], float)
            x = x[np.isfinite(x)]
            self._cache[key] = iqm_stat(x, self.reps)[0] if len(x) else None
        return self._cache[key]

    def ratio(
        self, env: str, a: str, b: str, metric: str = "final", horizon: float | None = None
    ) -> tuple[float, float, float] | None:
        """IQM(a) / IQM(b) with the 95% percentile CI of ``self.reps`` bootstrap replicates
        (each method's seeds resampled independently; a fixed generator, so repeatable).
        None unless b's IQM CI lies above 0 (a ratio to a baseline that may be 0 or negative
        means nothing)."""
        sb = self.stat(env, b, metric, horizon)
        xa, xb = self.scores(env, a, metric, horizon), self.scores(env, b, metric, horizon)
        if sb is None or sb.lo <= 0 or len(xa) == 0 or len(xb) == 0:
            return None
        rng = np.random.default_rng(0)
        ra = iqm_columns(xa[rng.integers(0, len(xa), size=(len(xa), self.reps))])
        rb = iqm_columns(xb[rng.integers(0, len(xb), size=(len(xb), self.reps))])
        reps = ra / rb
        lo, hi = np.percentile(reps, [100 * (1 - CI) / 2, 100 * (1 + CI) / 2])
        return float(iqm(xa) / iqm(xb)), float(lo), float(hi)

    def mean_ci(self, env, method, metric="final", horizon=None) -> tuple[float, float]:
        self.stat(env, method, metric, horizon)
        return self._mean_ci.get((env, method, metric, horizon), (float("nan"), float("nan")))

    # ---- tables
    def curves(self) -> list[dict]:
        rows = []
        for env in self.envs:
            grid = self.grid[env]
            for method in self.methods:
                rs = self.runs(env, method)
                if not rs:
                    continue
                V = np.stack([self.values[id(r)] for r in rs])  # [runs, points]
                mask = np.isfinite(V)
                groups: dict[bytes, list[int]] = {}
                for j in range(len(grid)):
                    if mask[:, j].any():
                        groups.setdefault(mask[:, j].tobytes(), []).append(j)
                out = {}
                for key, cols in groups.items():
                    sel = np.frombuffer(key, dtype=bool)
                    X = V[sel][:, cols][:, None, :]
                    pt, ci = interval_estimates({"c": X}, curve_fn, self.reps)
                    t = len(cols)
                    p, c = pt["c"], ci["c"]
                    for i, j in enumerate(cols):
                        out[j] = (p[i], c[0, i], c[1, i], p[t + i], c[0, t + i], c[1, t + i], int(sel.sum()))
                for j in sorted(out):
                    iqm, lo, hi, mean, mlo, mhi, n = out[j]
                    rows.append(
                        {
                            "env": env,
                            "method": method,
                            "env_steps": _num(grid[j]),
                            "iqm": iqm,
                            "iqm_lo": lo,
                            "iqm_hi": hi,
                            "mean": mean,
                            "mean_lo": mlo,
                            "mean_hi": mhi,
                            "n_seeds": n,
                        }
                    )
        return rows

    def final_table(self) -> list[dict]:
        rows = []
        for env in self.envs:
            h = self.horizon(env)
            for method in self.methods:
                rs = self.runs(env, method)
                if not rs:
                    continue
                s = self.stat(env, method, "final")
                assert s is not None, f"{env}/{method}: no finite final return"
                mlo, mhi = self.mean_ci(env, method, "final")
                a = self.stat(env, method, "auc", h) if h is not None else None
                steps = [r.last_step for r in rs]
                rows.append(
                    {
                        "env": env,
                        "method": method,
                        "n_seeds": s.n,
                        "seeds": " ".join(str(r.seed) for r in rs),
                        "iqm": s.iqm,
                        "iqm_lo": s.lo,
                        "iqm_hi": s.hi,
                        "mean": s.mean,
                        "mean_lo": mlo,
                        "mean_hi": mhi,
                        "final_steps_min": _num(min(steps)),
                        "final_steps_max": _num(max(steps)),
                        "auc_horizon": _num(h) if h is not None else None,
                        "auc_iqm": a.iqm if a else float("nan"),
                        "auc_lo": a.lo if a else float("nan"),
                        "auc_hi": a.hi if a else float("nan"),
                    }
                )
        return rows

    def baseline_pairs(self) -> list[tuple[str, str]]:
        """(method, baseline) pairs the PoI and per-cell tables show: every value-aware method
        over mle, and ``<m>`` over its Naive ablation ``<m>_naive`` where both ran."""
        va = [m for m in self.methods if m not in BASELINES]
        pairs = [(m, "mle") for m in va if "mle" in self.methods]
        return pairs + [(m, f"{m}_naive") for m in va if f"{m}_naive" in self.methods]

    def versus_table(self) -> list[dict]:
        """Per env (cell), each method of :meth:`baseline_pairs` against its baseline on the
        final return: both IQMs with their CIs, the IQM ratio with its bootstrap CI (NaN where
        the baseline's CI is not above 0), whether each learned, and the cell's reading by the
        claims' rule (:func:`vaml_ext.exp.claims.cell_reading`)."""
        rows = []
        for env in self.envs:
            for m, base in self.baseline_pairs():
                sa, sb = self.stat(env, m, "final"), self.stat(env, base, "final")
                if sa is None or sb is None:
                    continue
                la, lb = learned(sa, self.initial(env, m)), learned(sb, self.initial(env, base))
                r = self.ratio(env, m, base, "final")
                rows.append(
                    {
                        "env": env,
                        "method": m,
                        "baseline": base,
                        "n_seeds": sa.n,
                        "n_seeds_baseline": sb.n,
                        "iqm": sa.iqm,
                        "iqm_lo": sa.lo,
                        "iqm_hi": sa.hi,
                        "iqm_baseline": sb.iqm,
                        "iqm_baseline_lo": sb.lo,
                        "iqm_baseline_hi": sb.hi,
                        "ratio": r[0] if r else float("nan"),
                        "ratio_lo": r[1] if r else float("nan"),
                        "ratio_hi": r[2] if r else float("nan"),
                        "learned": la,
                        "learned_baseline": lb,
                        "reading": cell_reading(compare(sa, sb, la, lb), r, base),
                    }
                )
        return rows

    def poi_table(self) -> tuple[list[dict], list[str]]:
        """PoI of every value-aware method over mle, and of ``<m>`` over its Naive ablation
        ``<m>_naive`` (no stale-value refit, Algorithm 2 off) where both ran: per env, and over
        all envs that have both (``env = all``; needs equal seed counts per env, so the first
        ``n`` seeds by seed id are used where counts differ -- said in the notes)."""
        notes: list[str] = []
        rows: list[dict] = []
        va = [m for m in self.methods if m not in BASELINES]
        if "mle" not in self.methods:
            notes.append("no `mle` runs in the sweep: no probability of improvement over mle computed")
        elif not va:
            notes.append("no value-aware method besides `mle` in the sweep: no probability of improvement computed")
        for m, base in self.baseline_pairs():
            envs = [e for e in self.envs if self.runs(e, m) and self.runs(e, base)]
            if not envs:
                notes.append(f"{m}: no env with both {m} and {base} runs")
                continue
            dicts = {e: (self.scores(e, m, "final")[:, None], self.scores(e, base, "final")[:, None]) for e in envs}
            if len(envs) > 1:
                nx = min(len(dicts[e][0]) for e in envs)
                ny = min(len(dicts[e][1]) for e in envs)
                if any(len(dicts[e][0]) != nx or len(dicts[e][1]) != ny for e in envs):
                    notes.append(
                        f"{m} over {base}, all envs: seed counts differ across envs; the first {nx} seeds of "
                        f"{m} and {ny} of {base} (by seed id) per env are used"
                    )
                dicts["all"] = (
                    np.concatenate([dicts[e][0][:nx] for e in envs], axis=1),
                    np.concatenate([dicts[e][1][:ny] for e in envs], axis=1),
                )
            pt, ci = interval_estimates(dicts, probability_of_improvement, self.reps)
            for e in list(envs) + (["all"] if "all" in dicts else []):
                rows.append(
                    {
                        "env": e,
                        "method": m,
                        "baseline": base,
                        "poi": float(pt[e]),
                        "poi_lo": float(np.ravel(ci[e])[0]),
                        "poi_hi": float(np.ravel(ci[e])[1]),
                        "n_seeds": dicts[e][0].shape[0],
                        "n_seeds_baseline": dicts[e][1].shape[0],
                        "n_envs": len(envs) if e == "all" else 1,
                    }
                )
        return rows, notes


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else x


def _env_order(e: str):
    m = re.fullmatch(r"grid(\d+)", e)
    return (0, int(m.group(1)), "") if m else (1, 0, e)


_METHOD_ORDER = ["mle", "slbo", "ma_direct_l1", "ma_direct_l2", "ma_l1_naive", "ma_l1", "ma_vaml"]


def _method_order(m: str):
    return (_METHOD_ORDER.index(m), m) if m in _METHOD_ORDER else (len(_METHOD_ORDER), m)
