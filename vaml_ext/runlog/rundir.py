"""The run-directory format shared by every backend (gridworld, SLBO, MBPO) and the
aggregation.

A sweep directory holds one directory per run, at any depth; a run directory is any
directory containing ``run.yaml``::

    <sweep>/<env>/<method>/seed<k>/
        run.yaml      resolved run config: figure, preset, backend, env, method, seed,
                      budget, backend settings, provenance (git commit, dirty flag,
                      host, start time)
        returns.csv      evaluation curve, one row per evaluation, columns
                      ``env_steps,return,wall_time_s`` (+ backend extras); env steps are
                      real-environment steps consumed so far. Rows are never duplicated:
                      a resumed run first truncates the file to its checkpoint.
        tb/           TensorBoard event files
        ckpt/         checkpoints (:mod:`vaml_ext.runlog.ckpt`: ``latest.pt`` and
                      ``previous.pt``, written atomically)
        done.json     written last, atomically: final return, env steps, wall-clock.
                      Its presence marks the run finished; sweeps skip such runs.
        .lock, lock.json  the single-writer lock and its holder (:mod:`vaml_ext.runlog.lock`)

Backends may write more files (mbrl's ``results.csv``, SLBO's ``progress.csv`` and
``log.txt``); aggregation reads only ``run.yaml``, ``returns.csv`` and ``done.json``.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from vaml_ext.runlog.atomic import append_line, atomic_write, atomic_write_text

RUN_FILE = "run.yaml"
EVAL_FILE = "returns.csv"  # not "eval.csv": mbrl's Logger opens (truncates) a file of that name
DONE_FILE = "done.json"
EVAL_FIELDS = ("env_steps", "return", "wall_time_s")
REPO = Path(__file__).resolve().parents[2]


def git_provenance(repo: Path = REPO) -> dict[str, object]:
    """Commit of the code that runs (``unknown`` outside a git checkout), whether the
    work tree has uncommitted changes, the host, and what decides the run's float results
    (``numerics``: :func:`vaml_ext.runlog.numerics.fingerprint`)."""
    from vaml_ext.runlog.numerics import fingerprint

    def git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
            return r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None

    commit = git("rev-parse", "HEAD") or "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "numerics": fingerprint(),
    }


def plain_config(cfg) -> dict:
    """``cfg`` (an OmegaConf config) as plain containers, each top-level group resolved where
    it resolves and kept as written where it does not: upstream's ``action_optimizer`` group
    interpolates ``overrides.cem_*``, which MBPO's overrides files do not define and which
    upstream never resolves for an MBPO run."""
    from omegaconf import Container, OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    out = {}
    for key in cfg:
        node = cfg._get_node(key)
        container = isinstance(node, Container)  # a group or a list; else a single value
        try:
            out[key] = OmegaConf.to_container(node, resolve=True) if container else cfg[key]
        except InterpolationResolutionError:
            out[key] = OmegaConf.to_container(node, resolve=False) if container else node._value()
    return out


def write_run_config(run_dir: Path, cfg: dict) -> None:
    import yaml

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / RUN_FILE, yaml.safe_dump(cfg, sort_keys=False))


def read_run_config(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((Path(run_dir) / RUN_FILE).read_text()) or {}


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE_FILE).is_file()


def write_done(run_dir: Path, summary: dict) -> None:
    """``done.json`` (atomically; a failed write raises ``RunWriteError`` and leaves no file)."""
    atomic_write_text(Path(run_dir) / DONE_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def read_done(run_dir: Path) -> dict | None:
    p = Path(run_dir) / DONE_FILE
    return json.loads(p.read_text()) if p.is_file() else None


class EvalLog:
    """Append-only ``returns.csv``. ``keep_until`` (env steps) truncates rows written after
    the checkpoint a resumed run restarts from, so no row is lost or duplicated."""

    def __init__(self, run_dir: Path, extra_fields=(), keep_until: int | None = None):
        self.path = Path(run_dir) / EVAL_FILE
        self.fields = list(EVAL_FIELDS) + [f for f in extra_fields if f not in EVAL_FIELDS]
        rows = []
        if keep_until is not None and self.path.is_file():
            with open(self.path) as f:  # keep the rows verbatim (no float re-formatting)
                rows = [r for r in csv.DictReader(f) if float(r["env_steps"]) <= keep_until]

        def write(f):
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

        atomic_write(self.path, write, mode="w")

    def write(self, row: dict) -> None:
        """Append one row (fsync'd); a failed write leaves the file as it was and raises
        ``RunWriteError``."""
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore").writerow(
            {k: row.get(k, "") for k in self.fields}
        )
        append_line(self.path, buf.getvalue())


def read_csv_rows(path, numeric: bool = False, drop_empty: bool = False) -> list[dict]:
    """Rows of the CSV file ``path`` as dicts ([] if it does not exist): the one CSV reader
    of run files. ``numeric``: values as floats, empty cells as nan (or left out with
    ``drop_empty``)."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if not numeric:
        return rows
    if drop_empty:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]
    return [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in r.items()} for r in rows]


def read_eval(run_dir: Path) -> list[dict[str, float]]:
    """Rows of ``returns.csv`` as floats (empty cells -> nan)."""
    return read_csv_rows(Path(run_dir) / EVAL_FILE, numeric=True)


def iter_run_dirs(sweep_dir: Path) -> Iterator[Path]:
    """Every run directory under ``sweep_dir`` (sorted)."""
    for p in sorted(Path(sweep_dir).rglob(RUN_FILE)):
        yield p.parent
