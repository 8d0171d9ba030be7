"""End-of-run summaries and optional Weights & Biases logging, for every backend.

Part of the leaf package :mod:`vaml_ext.runlog`: it imports only :mod:`vaml_ext.runlog.rundir` (and ``wandb`` only when a run
asks for it), so every layer -- MBPO plugin, SLBO wrapper, gridworld, figure sweeps --
may use it.

* :func:`summarize` / :func:`finish_run` -- the two-line summary each MBPO, SLBO and
  gridworld run prints at its end (final and best return, env steps, wall-clock, where
  the files are), also written to ``done.json``.
* :class:`WandbRun` -- opt-in W&B logging (``overrides.wandb=true`` for MBPO, ``wandb=true``
  for ``python -m vaml_ext.slbo.run``, ``--wandb`` for the figure command, which sets
  ``VAML_WANDB=1`` for its runs). ``wandb`` is an optional extra
  (``pip install -e '.[wandb]'``); asking for it without it installed fails before any
  training with a message saying so. ``WANDB_MODE=offline`` (or ``wandb_mode=offline``)
  logs to ``<run dir>/wandb/`` with no network; ``wandb sync`` uploads it later.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from vaml_ext.checks import check_bool, invalid
from vaml_ext.runlog.rundir import DONE_FILE, read_csv_rows, write_done

#: W&B keys, identical for MBPO (``overrides.<key>``) and SLBO (``<key>=...``).
#: ``wandb_mode``: ``null`` = wandb's own default (``$WANDB_MODE``, else online).
WANDB_DEFAULTS: dict[str, object] = {"wandb": False, "wandb_project": "vaml", "wandb_entity": None, "wandb_mode": None}
WANDB_MODES = ("online", "offline", "disabled")
ENV_SWITCH = "VAML_WANDB"  # "1": every run started by this process (and its children) logs to W&B
#: the files a summary names first (the rest are counted): the evaluation curves, the
#: summary, TensorBoard, checkpoints and the backends' own logs
KEY_FILES = (
    "returns.csv",
    "progress.csv",
    "results.csv",
    "va_model.csv",
    DONE_FILE,
    "run.yaml",
    "config.yml",
    "tb/",
    "ckpt/",
    "wandb/",
    "log.txt",
    "stdout.log",
)


# ---- summaries ---------------------------------------------------------------------------
def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def summarize(
    rows: Sequence[dict],
    wall_s: float | None,
    run_dir,
    tag: str = "",
    step_key: str = "env_steps",
    return_key: str = "return",
) -> tuple[list[str], dict]:
    """The end-of-run summary of an evaluation curve.

    ``rows``: one dict per evaluation, in order, with ``step_key`` (real env steps so far)
    and ``return_key``; ``wall_s``: wall-clock seconds of the whole run (``None``: the last
    row's ``wall_time_s``). Returns the two lines to print and the dict for ``done.json``.
    """
    run_dir = Path(run_dir).resolve()
    rets = [_num(r.get(return_key)) for r in rows]
    steps = [_num(r.get(step_key)) for r in rows]
    finite = [i for i, x in enumerate(rets) if math.isfinite(x)]
    best_i = max(finite, key=lambda i: rets[i]) if finite else None
    if wall_s is None:
        wall_s = _num(rows[-1].get("wall_time_s")) if rows else float("nan")
    d = {
        "final_return": rets[-1] if rets else float("nan"),
        "best_return": rets[best_i] if best_i is not None else float("nan"),
        "best_env_steps": int(steps[best_i]) if best_i is not None and math.isfinite(steps[best_i]) else None,
        "env_steps": int(steps[-1]) if steps and math.isfinite(steps[-1]) else 0,
        "n_evals": len(rows),
        "wall_time_s": round(float(wall_s), 3),
        "run_dir": str(run_dir),
    }
    who = f"[{tag}] " if tag else ""
    best = (
        f"best {d['best_return']:.1f} at env step {d['best_env_steps']:,}"
        if d["best_env_steps"] is not None
        else f"best {d['best_return']:.1f}"
    )
    names = {p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    names = {n for n in names if not n.endswith(".tmp")} | {DONE_FILE}
    key = [n for n in KEY_FILES if n in names]
    more = len(names) - len(key)
    shown = ", ".join(key) + (f" + {more} more" if more else "")
    lines = [
        f"{who}finished: final return {d['final_return']:.1f}, {best}; {d['env_steps']:,} env steps, "
        f"{d['n_evals']} evaluations, {fmt_duration(wall_s)} wall-clock",
        f"{who}files: {run_dir}/ ({shown})",
    ]
    return lines, d


def finish_run(
    rows: Sequence[dict],
    wall_s: float | None,
    run_dir,
    tag: str = "",
    step_key: str = "env_steps",
    return_key: str = "return",
    extra: dict | None = None,
    stream=None,
) -> dict:
    """Print the two-line summary (to ``stream``, default stderr, so sweeps show it on the
    console while stdout goes to the run's log), write it with ``extra`` to
    ``<run_dir>/done.json``, and return that dict."""
    import sys

    lines, d = summarize(rows, wall_s, run_dir, tag, step_key, return_key)
    d = {**d, **(extra or {})}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_done(Path(run_dir), d)  # atomic; a failed write raises RunWriteError naming the file
    print("\n".join(lines), file=stream or sys.stderr, flush=True)
    return d


# ---- Weights & Biases --------------------------------------------------------------------
class WandbNotInstalled(RuntimeError):
    pass


def wandb_requested(flag) -> bool:
    """The run's own switch, or ``VAML_WANDB=1`` (set by the figure command's ``--wandb``)."""
    return bool(flag) or os.environ.get(ENV_SWITCH, "") == "1"


def check_wandb_options(opts, prefix: str = "") -> bool:
    """Validate the W&B keys of a config mapping (``wandb``, ``wandb_project``,
    ``wandb_entity``, ``wandb_mode``); ``prefix`` names them in errors (``overrides.``).
    When W&B is requested, checks that ``wandb`` is importable. Returns whether it is on."""
    get = opts.get if hasattr(opts, "get") else (lambda k, d=None: d)
    flag = check_bool(f"{prefix}wandb", get("wandb", False))
    mode = get("wandb_mode", None)
    if mode is not None and mode not in WANDB_MODES:
        raise invalid(
            f"{prefix}wandb_mode",
            mode,
            f"one of {', '.join(WANDB_MODES)} or null (wandb's default: $WANDB_MODE, else online)",
        )
    for key in ("wandb_project", "wandb_entity"):
        v = get(key, None)
        if v is not None and not isinstance(v, str):
            raise invalid(f"{prefix}{key}", v, "a string or null")
    on = wandb_requested(flag)
    if on:
        require_wandb(f"{prefix}wandb=true" if flag else f"{ENV_SWITCH}=1")
    return on


def require_wandb(why: str = "W&B logging"):
    try:
        import wandb
    except ImportError as e:
        raise WandbNotInstalled(
            f"{why} asks for Weights & Biases logging, but the optional dependency `wandb` is not "
            "installed; install it with `pip install -e '.[wandb]'` (or `pip install wandb`), or drop the "
            "switch"
        ) from e
    return wandb


class WandbRun:
    """One W&B run. Metrics are logged against ``env_step`` (defined as the x-axis of every
    metric), so rows from different sources (evaluations, model trainings) interleave
    correctly and a resumed run may log any step."""

    def __init__(
        self,
        config: dict,
        run_dir,
        name: str | None = None,
        project: str | None = "vaml",
        entity: str | None = None,
        mode: str | None = None,
        group: str | None = None,
    ):
        wandb = require_wandb()
        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        kw = dict(
            project=project or "vaml",
            entity=entity,
            config=config,
            dir=str(run_dir),
            name=name or os.environ.get("VAML_RUN_TAG") or run_dir.name,
            group=group,
        )
        if mode is not None:
            kw["mode"] = mode
        self.run = wandb.init(**kw)
        self.run.define_metric("env_step")
        self.run.define_metric("*", step_metric="env_step")
        self._lock = threading.Lock()

    @property
    def dir(self) -> str:
        return self.run.dir

    def log(self, metrics: dict[str, float], env_step: int) -> None:
        data = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        with self._lock:
            self.run.log({"env_step": int(env_step), **data})

    def log_rows(self, rows: Sequence[dict], step_key: str, prefix: str = "", skip=()) -> None:
        for r in rows:
            step = _num(r.get(step_key))
            if not math.isfinite(step):
                continue
            self.log(
                {
                    f"{prefix}{k}": _num(v)
                    for k, v in r.items()
                    if k != step_key and k not in skip and math.isfinite(_num(v))
                },
                int(step),
            )

    def finish(self, summary: dict | None = None) -> None:
        with self._lock:
            for k, v in (summary or {}).items():
                if _is_number(v) or isinstance(v, str):
                    self.run.summary[k] = v
            self.run.finish()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def start_wandb(opts, config: dict, run_dir, name: str | None = None) -> WandbRun | None:
    """A :class:`WandbRun` when ``opts`` (a mapping with the :data:`WANDB_DEFAULTS` keys)
    or ``$VAML_WANDB`` asks for one, else ``None``."""
    get = opts.get if hasattr(opts, "get") else (lambda k, d=None: d)
    if not wandb_requested(get("wandb", False)):
        return None
    return WandbRun(
        config,
        run_dir,
        name=name,
        project=get("wandb_project", "vaml"),
        entity=get("wandb_entity", None),
        mode=get("wandb_mode", None),
    )


class CsvFollower:
    """Logs the new rows of a CSV file a run appends to (e.g. SLBO's ``progress.csv``) to a
    :class:`WandbRun` every ``interval`` seconds, and once more at :meth:`stop`."""

    def __init__(self, path, tracker: WandbRun, step_key: str, prefix: str = "", interval: float = 10.0, skip=()):
        self.path, self.tracker, self.step_key, self.prefix, self.skip = Path(path), tracker, step_key, prefix, skip
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)

    def start(self) -> CsvFollower:
        self._thread.start()
        return self

    def poll(self) -> None:
        rows = read_csv_rows(self.path)
        if len(rows) < self.seen:  # the file was truncated (a resumed run)
            self.seen = 0
        self.tracker.log_rows(rows[self.seen :], self.step_key, self.prefix, self.skip)
        self.seen = len(rows)

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.poll()


def log_finished_run(
    opts, config: dict, run_dir, rows: Sequence[dict], step_key: str, summary: dict, prefix: str = "eval/"
) -> None:
    """W&B for backends without live logging (the gridworld): the whole curve at the end."""
    run = start_wandb(opts, config, run_dir)
    if run is None:
        return
    run.log_rows(rows, step_key, prefix)
    run.finish(summary)


def pop_wandb_args(argv: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    """Split ``key=value`` arguments into the W&B keys (``wandb=true``, ``wandb_project=...``,
    ``wandb_entity=...``, ``wandb_mode=...``) and the rest (for CLIs that are not Hydra apps)."""
    opts: dict[str, object] = dict(WANDB_DEFAULTS)
    rest = []
    for a in argv:
        key, sep, value = a.partition("=")
        if sep and key in WANDB_DEFAULTS:
            low = value.lower()
            if key == "wandb":
                if low not in ("true", "false", "1", "0"):
                    raise ValueError(f"wandb={value!r} is invalid: expected true or false")
                opts[key] = low in ("true", "1")
            else:
                opts[key] = None if low in ("null", "none", "") else value
        else:
            rest.append(a)
    return opts, rest


class follow_csv_in_wandb:
    """Context manager: when W&B is requested, a :class:`WandbRun` in ``run_dir`` that logs
    the rows of ``run_dir/csv_name`` while the block runs (and the run's ``config.yml``, if it
    writes one, as config at the end); a no-op otherwise."""

    def __init__(self, opts, config: dict, run_dir, csv_name: str, step_key: str, interval: float = 10.0):
        self.run = start_wandb(opts, config, run_dir)
        self.follower = (
            CsvFollower(Path(run_dir) / csv_name, self.run, step_key, interval=interval)
            if self.run is not None
            else None
        )
        self.run_dir = Path(run_dir)

    def __enter__(self):
        if self.follower is not None:
            self.follower.start()
        return self.run

    def __exit__(self, *exc):
        if self.run is None:
            return False
        self.follower.stop()
        cfg = self.run_dir / "config.yml"
        if cfg.is_file():
            import yaml

            self.run.run.config.update({"flags": yaml.safe_load(cfg.read_text())}, allow_val_change=True)
        self.run.finish()
        return False
