"""Run one experiment from its run directory: ``python -m vaml_ext.exp.backends <run_dir>``.

Reads ``run.yaml`` (written by :mod:`vaml_ext.exp.run`), runs the backend in this
process and writes ``done.json``. Every backend writes ``returns.csv``, ``tb/`` and
``ckpt/`` in the run directory and resumes from its checkpoint when started again:

* ``gridworld`` -- :func:`vaml_ext.gridworld.run.run_gridworld` (checkpoint every evaluation;
  the preset's ``budget.dyna`` overrides the figure's Dyna options);
* ``mbpo`` -- patched mbrl-lib MBPO composed as ``python -m mbrl.examples.main`` would
  (``overrides=<env config>``, method, base and budget overrides; the interpreter's mbrl
  must be the release ``run.yaml``'s ``base`` pins), with
  ``overrides.checkpoint_every=1`` (checkpoint every epoch, :mod:`vaml_ext.mbpo.checkpoint`);
* ``slbo`` -- the patched SLBO port via :mod:`vaml_ext.slbo.run` with ``log_dir`` = the
  run directory (checkpoint every stage); its ``progress.csv`` is converted to
  ``returns.csv`` (``env_steps`` = real samples collected before the evaluation).
  ``--batch <run_dir> ...``: several seeds of one SLBO run in this process through the
  seed-batched runner (:mod:`vaml_ext.slbo.batched.run`, the same numbers per seed).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from vaml_ext.runlog.progress import RunProgress
from vaml_ext.runlog.rundir import EvalLog, read_csv_rows, read_eval, read_run_config, write_done


def _progress_enabled() -> bool:
    return os.environ.get("VAML_PROGRESS", "1") == "1"


def _restart() -> bool:
    """``restart=true`` of the sweep: start over, setting unreadable/old checkpoints aside."""
    return os.environ.get("VAML_RESTART", "0") == "1"


def _tag(run) -> str:
    return os.environ.get("VAML_RUN_TAG") or f"{run['figure']}/{run['env']}/{run['method']}/seed{run['seed']}"


def _summary(run_dir: Path, wall: float, **extra) -> dict:
    from vaml_ext.runlog.tracking import summarize

    rows = read_eval(run_dir)  # final/best return, env steps, evaluations, wall-clock, run dir
    out = summarize(rows, rows[-1].get("wall_time_s", wall) if rows else wall, run_dir)[1]
    out.update(extra)
    return out


# ---- gridworld --------------------------------------------------------------------------
#: a gridworld preset's budget per env: env steps, evaluation spacing and Dyna options that
#: override the figure's ``dyna`` block (e.g. ``{model: mlp}`` for the network model)
GRIDWORLD_BUDGET_KEYS = ("env_steps", "eval_every", "dyna")


def run_gridworld_backend(run_dir: Path, run: dict) -> dict:
    from vaml_ext.gridworld.run import run_gridworld

    b, s = run["budget"], run["settings"]
    unknown = sorted(set(b) - set(GRIDWORLD_BUDGET_KEYS))
    if unknown:
        raise ValueError(f"gridworld budget: unknown key(s) {unknown}; valid: {list(GRIDWORLD_BUDGET_KEYS)}")
    # a preset may change Dyna options (e.g. the model class): budget.dyna over the figure's dyna
    dyna = {**(s["dyna"] or {}), **(b.get("dyna") or {})}
    return run_gridworld(
        run_dir,
        size=s["size"],
        method=run["method"],
        seed=run["seed"],
        env_steps=b["env_steps"],
        eval_every=b["eval_every"],
        dyna=dyna,
        progress=_progress_enabled(),
        restart=_restart(),
    )


# ---- MBPO -------------------------------------------------------------------------------
def mbpo_overrides(run: dict) -> list:
    s = run["settings"]
    return [
        "device=cpu",
        f"seed={run['seed']}",
        *s["env"].get("extra", []),
        *s["method"],
        *s.get("base", []),
        *(run["budget"] or []),
        "overrides.checkpoint_every=1",
        f"overrides.progress_bar={'true' if _progress_enabled() else 'false'}",
        *(["overrides.resume=false"] if _restart() else []),
    ]


def check_base_version(run: dict) -> None:
    """The interpreter's mbrl must be the release run.yaml's base pins (vaml_ext.exp.bases)."""
    import mbrl

    want = (run.get("base") or {}).get("version")
    have = getattr(mbrl, "__version__", None)
    if want is not None and have != want:
        raise RuntimeError(
            f"run.yaml: base={run['base']['name']} pins mbrl {want}, but {sys.executable} has mbrl {have} "
            f"({mbrl.__file__}); run the sweep through `python -m vaml_ext.exp` / `vaml_ext.exp.run`, which "
            "picks the base's interpreter"
        )


def run_mbpo_backend(run_dir: Path, run: dict) -> dict:
    import torch

    from vaml_ext.mbpo.runner import compose, run_mbpo

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    check_base_version(run)
    cfg = compose(run["settings"]["env"]["overrides"], mbpo_overrides(run))
    t0 = time.perf_counter()
    out = run_mbpo(cfg, run_dir, silent=False)
    return _summary(run_dir, time.perf_counter() - t0, best_eval_reward=out["best_eval_reward"])


# ---- SLBO -------------------------------------------------------------------------------
def slbo_to_returns(run_dir: Path) -> int:
    """Rewrite ``returns.csv`` from SLBO's ``progress.csv`` (which a resumed SLBO run
    already truncates to its checkpoint); returns the number of rows."""
    rows = read_csv_rows(Path(run_dir) / "progress.csv")
    log = EvalLog(run_dir, extra_fields=("stage", "virt_return", "real_return_std"), keep_until=-1)
    for r in rows:
        log.write(
            {
                "env_steps": r["n_real_samples"],
                "return": r["real_return_mean"],
                "wall_time_s": r["wall_time_s"],
                "stage": r["stage"],
                "virt_return": r["virt_return_mean"],
                "real_return_std": r["real_return_std"],
            }
        )
    return len(rows)


def _slbo_watch(run_dir: Path, run: dict, stop: threading.Event) -> None:
    """Progress line for SLBO runs, from the files SLBO writes (no change to the port)."""
    import yaml

    prog, seen = None, 0
    while True:
        stopped = stop.wait(5.0)  # one last read after the run ended: its final evaluation row
        if prog is None:
            cfg_file = run_dir / "config.yml"
            if not cfg_file.is_file():
                if stopped:
                    break
                continue
            flags = yaml.safe_load(cfg_file.read_text()) or {}
            total = int(flags["slbo"]["n_stages"]) * int(flags["rollout"]["n_train_samples"])
            prog = RunProgress(total, desc=_tag(run))
        rows = read_csv_rows(run_dir / "progress.csv")
        if rows:
            for r in rows[seen:]:
                prog.update(int(r["n_real_samples"]), float(r["real_return_mean"]))
            seen = len(rows)
        if stopped:
            break
    if prog is not None:
        prog.close(announce=False)  # the run summary (vaml_ext.runlog.tracking) follows


@contextlib.contextmanager
def _slbo_watching(runs: list[tuple[Path, dict]]):
    """A progress line per SLBO run dir (when progress is on) while the block runs."""
    stop = threading.Event()
    watchers = [threading.Thread(target=_slbo_watch, args=(Path(d), r, stop), daemon=True) for d, r in runs]
    if _progress_enabled():
        for w in watchers:
            w.start()
    try:
        yield
    finally:
        stop.set()
        for w in watchers:
            if w.is_alive():
                w.join(timeout=10)


def _slbo_args(run: dict, *per_run: str) -> list[str]:
    """``vaml_ext.slbo.run``-style arguments of ``run.yaml``'s run, ``per_run`` (seed and
    log_dir) among them."""
    restart = ["ckpt.resume=False"] if _restart() else []
    return [f"variant={run['method']}", f"env={run['env']}", *per_run, *(run["budget"] or []), *restart]


def run_slbo_backend(run_dir: Path, run: dict) -> dict:
    from vaml_ext.slbo import run as slbo_run

    t0 = time.perf_counter()
    with _slbo_watching([(run_dir, run)]):
        slbo_run.main(_slbo_args(run, f"seed={run['seed']}", f"log_dir={run_dir}"))
    slbo_to_returns(run_dir)
    return _summary(run_dir, time.perf_counter() - t0)


BACKENDS = {"gridworld": run_gridworld_backend, "mbpo": run_mbpo_backend, "slbo": run_slbo_backend}


def _same_but_seed(runs: list[dict]) -> None:
    def key(run):
        return {k: v for k, v in run.items() if k not in ("seed", "provenance", "resumes")}

    for run in runs[1:]:
        if key(run) != key(runs[0]):
            raise ValueError(f"a batch is one figure, preset, env, method and budget; {key(run)} != {key(runs[0])}")


def run_slbo_batch(run_dirs: list[Path]) -> int:
    """Several SLBO runs (one figure, env, method and budget; their seeds differ) in this
    process through the seed-batched runner (:mod:`vaml_ext.slbo.batched.run`): each run
    directory ends as :func:`run_slbo_backend` leaves it (same numbers, ``returns.csv``,
    ``done.json``, which records ``runner: batched``). 0 if every seed finished."""
    from vaml_ext.slbo.batched import run as batched

    runs = [read_run_config(d) for d in run_dirs]
    if any(r.get("backend") != "slbo" for r in runs):
        print("--batch: SLBO runs only", file=sys.stderr)
        return 2
    _same_but_seed(runs)
    seeds, dirs = ",".join(str(r["seed"]) for r in runs), ",".join(str(d) for d in run_dirs)
    t0 = time.time()
    with _slbo_watching(list(zip(run_dirs, runs))):
        results = batched.run_batch(_slbo_args(runs[0], f"seeds={seeds}", f"log_dirs={dirs}"))
    failed = 0
    for d, (_, error) in zip(run_dirs, results):
        if error is not None:
            failed += 1
            continue
        slbo_to_returns(d)
        write_done(d, {**_summary(d, time.time() - t0), "runner": f"batched ({len(run_dirs)} seeds)"})
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--batch"] and len(argv) > 1:
        return run_slbo_batch([Path(d).resolve() for d in argv[1:]])
    if len(argv) != 1:
        print("usage: python -m vaml_ext.exp.backends <run_dir> | --batch <run_dir> <run_dir> ...", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    run = read_run_config(run_dir)
    backend = run.get("backend")
    if backend not in BACKENDS:
        print(f"{run_dir}/run.yaml: unknown backend {backend!r}; valid: {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        summary = BACKENDS[backend](run_dir, run) or {}
    except Exception as e:  # the log (stdout.log) gets the traceback, the console one line
        import traceback

        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        print(f"{_tag(run)}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    summary = {**_summary(run_dir, time.time() - t0), **{k: v for k, v in summary.items() if k != "status"}}
    write_done(run_dir, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
