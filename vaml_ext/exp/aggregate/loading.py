"""Loading a sweep: every run directory under it (format: :mod:`vaml_ext.runlog.rundir`)
into :class:`Run` records, with the skipped, unfinished and duplicate runs accounted for."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaml_ext.exp.claims import canonical_env, norm_figure
from vaml_ext.runlog import rundir


class AggregateError(ValueError):
    """Bad input (no runs, mixed figures, duplicate runs): the message says what and where."""


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
    dirty: bool | None

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
    runs: list[Run]
    unfinished: list[Run]  # not done (excluded unless include_unfinished; then also in runs)
    skipped: list[tuple[str, str]]  # (path, reason)
    skipped_keys: list[tuple]  # (env, method, seed) of skipped runs whose run.yaml names them
    figure: str | None
    presets: list[str]
    backends: list[str]
    commits: dict[str, int]
    dirty: int
    bases: Sequence[str] = ()  # the MBPO runs' mbrl-lib base (run.yaml ``base``), e.g. "paper (mbrl 0.2.0.dev3)"


def _base_label(base) -> str | None:
    """``run.yaml``'s ``base`` (:func:`vaml_ext.exp.bases.pin`) as one label; None when absent
    (SLBO and gridworld runs, or MBPO runs written before bases were recorded)."""
    if isinstance(base, dict) and base.get("name"):
        pkg, ver = base.get("package"), base.get("version")
        return f"{base['name']} ({pkg} {ver})" if pkg and ver else str(base["name"])
    return str(base) if base not in (None, "") else None


def _read_config(d: Path) -> tuple[dict | None, str | None]:
    """``(run.yaml as a dict, None)`` or ``(None, why it cannot be used)``."""
    try:
        cfg = rundir.read_run_config(d)
    except Exception as e:  # noqa: BLE001 -- any parse error: skip with the reason
        return None, f"unreadable {rundir.RUN_FILE}: {e}"
    if not isinstance(cfg, dict):
        return None, f"{rundir.RUN_FILE} is not a mapping"
    lacking = [k for k in ("env", "method", "seed") if cfg.get(k) in (None, "")]
    if lacking:
        return cfg, f"{rundir.RUN_FILE} lacks {', '.join(lacking)}"
    return cfg, None


def _read_run(d: Path, cfg: dict) -> tuple[Run | None, str | None]:
    """``(the run's curve, None)`` or ``(None, why it has none)``."""
    rows = [
        r
        for r in rundir.read_eval(d)
        if math.isfinite(r.get("env_steps", float("nan"))) and math.isfinite(r.get("return", float("nan")))
    ]
    if not rows:
        return None, f"empty {rundir.EVAL_FILE}" if (d / rundir.EVAL_FILE).is_file() else f"no {rundir.EVAL_FILE}"
    by_step = {}
    for r in rows:  # a step evaluated twice keeps its last row
        by_step[r["env_steps"]] = r["return"]
    steps = np.array(sorted(by_step), dtype=float)
    prov = cfg.get("provenance") or {}
    run = Run(
        path=d,
        env=canonical_env(cfg["env"]),
        method=str(cfg["method"]).strip().lower(),
        seed=_seed(cfg["seed"]),
        done=rundir.is_done(d),
        steps=steps,
        returns=np.array([by_step[s] for s in steps], dtype=float),
        commit=str(prov.get("commit", "unknown")),
        dirty=prov.get("dirty"),
    )
    return run, None


def _check_one_figure_and_base(figures: dict, bases: dict) -> None:
    if len(figures) > 1:
        parts = "; ".join(f"{f or 'no figure'}: {len(v)} runs (e.g. {v[0]})" for f, v in figures.items())
        raise AggregateError(f"mixed figures in one sweep ({parts}); aggregate one figure per sweep dir")
    if len(bases) > 1:  # runs of different mbrl-lib versions are not comparable curve for curve
        parts = "; ".join(f"{b} (e.g. {rel})" for b, rel in sorted(bases.items()))
        raise AggregateError(f"mixed MBPO bases in one sweep ({parts}); aggregate one base per sweep dir")


def load_runs(sweep_dir: Path, include_unfinished: bool = False, warn=print) -> Loaded:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AggregateError(f"sweep dir {sweep_dir} does not exist or is not a directory")
    dirs = list(rundir.iter_run_dirs(sweep_dir))
    if not dirs:
        raise AggregateError(
            f"no runs under {sweep_dir}: no {rundir.RUN_FILE} found at any depth "
            f"(a run directory is one holding {rundir.RUN_FILE}, see vaml_ext/runlog/rundir.py)"
        )
    runs, unfinished, skipped, skipped_keys = [], [], [], []
    figures: dict[str | None, list[str]] = {}
    presets: set[str] = set()
    backends: set[str] = set()
    bases: dict[str, str] = {}  # label -> first run dir with it
    commits: dict[str, int] = {}
    dirty = 0
    seen: dict[tuple, Path] = {}

    def skip(rel: str, why: str) -> None:
        skipped.append((rel, why))
        warn(f"warning: skipping {rel}: {why}")

    for d in dirs:
        rel = str(d.relative_to(sweep_dir)) or "."
        cfg, why = _read_config(d)
        if cfg is not None:
            figures.setdefault(norm_figure(cfg.get("figure")), []).append(rel)
        if why is not None or cfg is None:
            skip(rel, str(why))
            continue
        run, why = _read_run(d, cfg)
        if run is None:
            skip(rel, str(why))
            skipped_keys.append((canonical_env(cfg["env"]), str(cfg["method"]).strip().lower(), _seed(cfg["seed"])))
            continue
        key = (run.env, run.method, run.seed)
        if key in seen:
            raise AggregateError(
                f"two runs for env={run.env} method={run.method} seed={run.seed}: "
                f"{seen[key]} and {d}; keep one per sweep"
            )
        seen[key] = d
        presets.update([str(cfg["preset"])] if cfg.get("preset") is not None else [])
        backends.update([str(cfg["backend"])] if cfg.get("backend") is not None else [])
        label = _base_label(cfg.get("base"))
        if label is not None:
            bases.setdefault(label, rel)
        if not run.done:
            unfinished.append(run)
            if not include_unfinished:
                continue
        runs.append(run)
        commits[run.commit] = commits.get(run.commit, 0) + 1
        dirty += bool(run.dirty)
    _check_one_figure_and_base(figures, bases)
    if not runs:
        raise AggregateError(
            f"no usable runs under {sweep_dir}: {len(dirs)} run dirs, {len(skipped)} skipped "
            f"(empty/invalid), {len(unfinished)} unfinished"
            + ("" if include_unfinished else " (pass --include-unfinished to use them)")
        )
    figure = next(iter(figures)) if figures else None
    return Loaded(
        runs,
        unfinished,
        skipped,
        skipped_keys,
        figure,
        sorted(presets),
        sorted(backends),
        commits,
        dirty,
        sorted(bases),
    )
