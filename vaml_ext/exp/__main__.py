"""One command per figure and preset: run the sweep through Hydra's launchers, then aggregate.

    python -m vaml_ext.exp fig1 --preset smoke             # minutes on 2 CPU cores (CI)
    python -m vaml_ext.exp fig3 --preset short --jobs 8    # hours on a laptop / workstation
    python -m vaml_ext.exp fig2 --preset paper --launcher slurm \\
        --launcher-arg hydra.launcher.partition=learnfair
    python -m vaml_ext.exp fig3 --preset smoke --envs hopper --methods mle ma_l1 --seeds 0 1
    python -m vaml_ext.exp fig3 --preset smoke --dry-run   # print the Hydra command only
    python -m vaml_ext.exp fig3 --preset smoke --base paper  # MBPO on the authors' mbrl 0.2.0.dev3

The sweep is ``python -m vaml_ext.exp.run -m figure=<fig> preset=<p> env=... method=...
seed=...`` (every env x method x seed of the figure config, ``exp/conf/figure/<fig>.yaml``)
with ``hydra/launcher=local`` (hydra-joblib-launcher, ``--jobs`` processes) or ``slurm``
(hydra-submitit-launcher). Results go to ``<out>/<fig>/<preset>/<env>/<method>/seed<k>``;
finished runs are skipped and unfinished ones resume, so re-running the same command after
an interruption completes the sweep; a run another process is writing is skipped and
counted "in use"; ``--restart`` starts the selected unfinished runs over (their checkpoints
set aside), the explicit choice when a run's checkpoints cannot be loaded. Then
:func:`vaml_ext.exp.aggregate.aggregate` writes ``<out>/<fig>/<preset>/report/`` (report.md,
PNGs, CSVs). ``--base paper|current`` picks the mbrl-lib base of the MBPO runs (default: the
preset's ``base``, else ``current``; Figure 3's ``paper`` preset runs on ``paper``, the
authors' mbrl 0.2.0.dev3 built by ``make install-paper``); a sweep on another base than its
preset's goes to ``<out>/<fig>/<preset>-<base>/``. Exit status: 0 when every run finished, 1 when some failed (the report still
covers the finished ones).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vaml_ext import figures
from vaml_ext.exp.bases import BASES, BaseError, base_for, interpreter, preset_base
from vaml_ext.exp.run import FAILED_FILE, PRESETS, RunConfigError, seeds_for, selection_for
from vaml_ext.runlog.lock import describe, holder_if_locked
from vaml_ext.runlog.rundir import DONE_FILE, REPO


def load_figure(name: str) -> dict:
    """:func:`vaml_ext.figures.load_figure`, an unknown name ending the command with the valid ones."""
    try:
        return figures.load_figure(name)
    except KeyError:
        raise SystemExit(f"unknown figure {name!r}; valid: {', '.join(figures.figure_names())}") from None


def _subset(kind, chosen, valid):
    if not chosen:
        return list(valid)
    bad = [c for c in chosen if c not in valid]
    if bad:
        raise SystemExit(f"--{kind} {' '.join(map(str, bad))}: not in this figure; valid: " + " ".join(map(str, valid)))
    return list(chosen)


def run_group(fig: dict, preset: str, base: str) -> str:
    """The sweep's directory name: the preset, with ``-<base>`` for another base than the preset's."""
    return preset if base == preset_base(fig, preset) else f"{preset}-{base}"


def sweep_command(
    fig: dict, preset: str, envs, methods, seeds, out: Path, launcher: str, jobs: int, extra=(), base=None
) -> list:
    base = base or preset_base(fig, preset)
    cmd = [
        sys.executable,
        "-m",
        "vaml_ext.exp.run",
        "-m",
        f"figure={fig['name']}",
        f"preset={preset}",
        f"env={','.join(envs)}",
        f"method={','.join(methods)}",
        f"seed={','.join(map(str, seeds))}",  # a job's seeds may be a batch: 1+2+3+4
        f"out_root={out}",
        f"base={base}",
        f"run_group={run_group(fig, preset, base)}",
        f"hydra/launcher={launcher}",
    ]
    if launcher == "local":
        cmd.append(f"hydra.launcher.n_jobs={jobs}")
    return cmd + list(extra)


def seed_jobs(fig: dict, seeds: list[int], batch: int | None, jobs: int, launcher: str) -> list:
    """The sweep's ``seed=`` values: one per seed, or (SLBO) batches ``a+b+...`` of ``batch``
    seeds each, run by the seed-batched runner. Default (``batch`` None): SLBO figures on the
    local launcher split their seeds evenly over the ``jobs`` slots; anything else, one seed
    per job."""
    if batch is not None and batch < 1:
        raise ValueError("--batch-seeds must be >= 1")
    if fig["backend"] != "slbo":
        if batch not in (None, 1):
            raise ValueError(
                f"--batch-seeds: only SLBO figures run several seeds per process ({fig['name']} is {fig['backend']})"
            )
        return list(seeds)
    if batch is None:
        batch = -(-len(seeds) // jobs) if launcher == "local" else 1
    chunks = [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
    return [c[0] if len(c) == 1 else "+".join(map(str, c)) for c in chunks]


def _report_runs(sweep_dir: Path, runs: list, wall: float, returncode: int) -> list:
    """Print what became of each run of the sweep; return the finished ones."""
    done = [r for r in runs if (r / DONE_FILE).is_file()]
    in_use = {r: h for r in runs if r not in done and (h := holder_if_locked(r)) is not None}
    failed = [r for r in runs if (r / FAILED_FILE).is_file() and r not in in_use]
    missing = [r for r in runs if r not in done and r not in failed and r not in in_use]
    print(
        f"\nsweep finished in {wall / 60:.1f} min: {len(done)}/{len(runs)} runs done, {len(failed)} failed, "
        f"{len(in_use)} in use by another process, {len(missing)} missing (Hydra exit {returncode})",
        flush=True,
    )
    for r, h in in_use.items():
        print(f"  IN USE {r.relative_to(sweep_dir)} by {describe(h)}: skipped")
    for r in failed:
        info = json.loads((r / FAILED_FILE).read_text())
        print(f"  FAILED {r.relative_to(sweep_dir)} (exit {info.get('returncode')}): see {r / 'stdout.log'}")
    for r in missing:
        print(f"  MISSING {r.relative_to(sweep_dir)}")
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m vaml_ext.exp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("figure", help="fig1 | fig2 | fig3 | fig4 (exp/conf/figure/<name>.yaml)")
    p.add_argument("--preset", choices=PRESETS, default="smoke")
    p.add_argument("--jobs", type=int, default=2, help="parallel runs with the local launcher (default 2)")
    p.add_argument(
        "--launcher",
        choices=("local", "slurm", "basic"),
        default="local",
        help="local = hydra-joblib-launcher, slurm = hydra-submitit-launcher, basic = sequential",
    )
    p.add_argument(
        "--launcher-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override, e.g. hydra.launcher.partition=gpu (repeatable)",
    )
    p.add_argument(
        "--base",
        choices=tuple(BASES),
        help="mbrl-lib base of the MBPO runs: current = mbrl 0.2.0 (make install), paper = the authors' "
        "0.2.0.dev3 (make install-paper, .venv-paper); default: the preset's (fig3 paper: paper), else current",
    )
    p.add_argument("--out", type=Path, default=REPO / "exp" / "results", help="results root (default exp/results)")
    p.add_argument("--envs", nargs="+", help="subset of the figure's envs (default: the preset's)")
    p.add_argument("--methods", nargs="+", help="subset of the figure's methods (default: the preset's)")
    p.add_argument(
        "--seeds", nargs="+", type=int, help="seeds to run, from the figure's 5 (default: the preset's; smoke runs 2)"
    )
    p.add_argument(
        "--batch-seeds",
        type=int,
        default=None,
        metavar="N",
        help="SLBO figures: N seeds per job, run as one process by the seed-batched runner (same numbers per "
        "seed, fewer CPU seconds per seed); default with the local launcher: the seeds split evenly over --jobs; "
        "1 = one seed per process",
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions for the CIs")
    p.add_argument("--no-aggregate", action="store_true")
    p.add_argument(
        "--restart",
        action="store_true",
        help="start the selected unfinished runs over, setting their checkpoints aside (use when a "
        "run's checkpoints cannot be loaded)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the sweep command and exit")
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log every run to Weights & Biases (sets VAML_WANDB=1 for the runs; needs `pip install "
        "wandb`; WANDB_MODE=offline logs to each run's wandb/ without network)",
    )
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error("--jobs must be >= 1")
    from vaml_ext.runlog.tracking import ENV_SWITCH, WandbNotInstalled, require_wandb

    if a.wandb:
        try:
            require_wandb("--wandb")
        except WandbNotInstalled as e:
            p.error(str(e))
    fig = load_figure(a.figure)
    if a.preset not in (fig.get("presets") or {}):
        p.error(f"--preset {a.preset} is not defined for {a.figure}")
    try:
        envs = _subset("envs", a.envs, fig["envs"]) if a.envs else selection_for(fig, a.preset, "envs")
        methods = (
            _subset("methods", a.methods, fig["methods"]) if a.methods else selection_for(fig, a.preset, "methods")
        )
    except RunConfigError as e:
        p.error(str(e))
    seeds = (
        seeds_for(fig, a.preset)
        if not a.seeds
        else _subset("seeds", a.seeds, sorted(set(fig["seeds"]) | set(seeds_for(fig, a.preset))))
    )
    try:
        base = base_for(fig, a.preset, a.base)
    except BaseError as e:
        p.error(f"--base: {e}")
    missing_base = None
    try:
        interpreter(base)
    except BaseError as e:
        missing_base = str(e)
    out = a.out.resolve()
    sweep_dir = out / fig["name"] / run_group(fig, a.preset, base)
    try:
        jobs = seed_jobs(fig, seeds, a.batch_seeds, a.jobs, a.launcher)
    except ValueError as e:
        p.error(str(e))
    cmd = sweep_command(
        fig,
        a.preset,
        envs,
        methods,
        jobs,
        out,
        a.launcher,
        a.jobs,
        [*a.launcher_arg, *(["restart=true"] if a.restart else [])],
        base=base,
    )
    n = len(envs) * len(methods) * len(seeds)
    batched = f" (seeds batched per job: {' '.join(map(str, jobs))})" if len(jobs) < len(seeds) else ""
    print(
        f"{fig['name']} ({fig.get('title', '')}), preset {a.preset}, base {base}: {len(envs)} envs x "
        f"{len(methods)} methods x {len(seeds)} seeds = {n} runs{batched} -> {sweep_dir}",
        flush=True,
    )
    print("sweep: " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
    if a.dry_run:
        if missing_base:
            print(f"note: {missing_base}", flush=True)
        return 0
    if missing_base:
        p.error(missing_base)
    t0 = time.time()
    env = dict(os.environ)
    if a.wandb:
        env[ENV_SWITCH] = "1"
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), env.get("PYTHONPATH")) if x)
    proc = subprocess.run(cmd, cwd=REPO, env=env)
    wall = time.time() - t0
    runs = [sweep_dir / e / m / f"seed{s}" for e in envs for m in methods for s in seeds]
    done = _report_runs(sweep_dir, runs, wall, proc.returncode)
    if not a.no_aggregate and done:
        from vaml_ext.exp.aggregate import aggregate

        res = aggregate(sweep_dir, reps=a.reps)
        print(f"report: {res['report']}", flush=True)
    return 0 if len(done) == n else 1


if __name__ == "__main__":
    from vaml_ext.runlog import numerics

    numerics.pin()  # the sweep's processes inherit it ($VAML_NUMERICS; pinned by default)
    sys.exit(main())
