"""Regenerate every regression baseline under tests/baselines/ -- one script.

* ``tests/baselines/smoke/<fig>.csv`` + ``<fig>.json``: every env x method of each figure
  at the ``smoke`` budget, all 5 paper seeds (the CI test runs 2 of them and compares its
  curves with these under a tolerance derived from the 5-seed spread;
  ``tests/exp/test_smoke_figures.py``). Rows: env, method, seed, env_steps, return.
  The sidecar JSON records the exact command, the git commit when it was written and
  the commits the runs were produced at (``run_commits``, from each run.yaml), dirty flag,
  date, seeds, wall-clock and the runs' summed run time. Finished runs in ``--work`` are
  reused, so re-running the script after an interruption only runs what is missing.
* ``--mbpo-learning``: also the MBPO learning-regression curves, via
  ``exp/mbpo/make_baselines.py``: ``tests/baselines/mbpo_inv_pendulum_1k_mle.*`` and
  ``mbpo_cartpole_2k_{mle,ma_l1}.*`` (3 seeds each).

    python exp/make_baselines.py                       # all four figures, smoke, seeds 0-4 (fig2/4: 1-5)
    python exp/make_baselines.py --figures fig3 --jobs 4
    python exp/make_baselines.py --mbpo-learning       # + the MBPO learning curves (~50 min, 1 core)
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vaml_ext.runlog import numerics  # noqa: E402

numerics.pin()  # the sweeps it runs inherit pinned numerics ($VAML_NUMERICS)

from vaml_ext.exp.__main__ import load_figure  # noqa: E402
from vaml_ext.exp.run import selection_for  # noqa: E402
from vaml_ext.runlog.rundir import git_provenance, iter_run_dirs, read_eval, read_run_config  # noqa: E402

FIGURES = ("fig1", "fig2", "fig3", "fig4")


def collect(sweep_dir: Path):
    """Curve rows of every finished run, the commits that produced them (run.yaml
    provenance) and the runs' summed wall-clock (done.json)."""
    rows, commits, seconds = [], set(), 0.0
    for run_dir in iter_run_dirs(sweep_dir):
        run = read_run_config(run_dir)
        commits.add((run.get("provenance") or {}).get("commit", "unknown"))
        seconds += float(json.loads((run_dir / "done.json").read_text()).get("wall_time_s", 0.0))
        if not (run_dir / "done.json").is_file():
            raise SystemExit(f"{run_dir} did not finish; not writing a baseline from a partial sweep")
        for r in read_eval(run_dir):
            rows.append(
                {
                    "env": run["env"],
                    "method": run["method"],
                    "seed": run["seed"],
                    "env_steps": int(r["env_steps"]),
                    "return": r["return"],
                }
            )
    return sorted(rows, key=lambda r: (r["env"], r["method"], r["seed"], r["env_steps"])), sorted(commits), seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figures", nargs="+", default=list(FIGURES), choices=FIGURES)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "tests" / "baselines" / "smoke")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "baselines")
    p.add_argument("--mbpo-learning", action="store_true", help="also regenerate the MBPO learning-regression curves")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for fig in a.figures:
        spec = load_figure(fig)
        seeds = [str(s) for s in spec["seeds"]]  # all 5 paper seeds for the spread
        cmd = [
            sys.executable,
            "-m",
            "vaml_ext.exp",
            fig,
            "--preset",
            "smoke",
            "--seeds",
            *seeds,
            "--jobs",
            str(a.jobs),
            "--out",
            str(a.work),
            "--no-aggregate",
        ]
        t0 = time.time()
        print(f"== {fig}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
        rows, run_commits, run_seconds = collect(a.work / fig / "smoke")
        expected = len(selection_for(spec, "smoke", "envs")) * len(selection_for(spec, "smoke", "methods")) * len(seeds)
        runs = {(r["env"], r["method"], r["seed"]) for r in rows}
        if len(runs) != expected:
            raise SystemExit(f"{fig}: {len(runs)} runs found, expected {expected}")
        with open(a.out / f"{fig}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["env", "method", "seed", "env_steps", "return"])
            w.writeheader()
            w.writerows(rows)
        prov = git_provenance()
        meta = {
            "figure": fig,
            "preset": "smoke",
            "seeds": [int(s) for s in seeds],
            "command": "python -m vaml_ext.exp " + " ".join(cmd[3:-3]) + " --out <work> --no-aggregate",
            "regenerate": f"python exp/make_baselines.py --figures {fig}",
            "commit": prov["commit"],
            "dirty": prov["dirty"],
            "numerics": prov["numerics"],
            "run_commits": run_commits,
            "run_seconds_total": round(run_seconds, 1),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "wall_clock_s": round(time.time() - t0, 1),
            "runs": expected,
        }
        (a.out / f"{fig}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(
            f"   wrote {a.out / (fig + '.csv')} ({len(rows)} rows, {expected} runs, "
            f"{meta['wall_clock_s'] / 60:.1f} min)",
            flush=True,
        )
    if a.mbpo_learning:
        script = str(REPO / "exp" / "mbpo" / "make_baselines.py")
        for args in (
            ["--regression", "inv_pendulum_1k", "--methods", "mle"],
            ["--regression", "cartpole_2k", "--methods", "mle", "ma_l1"],
        ):
            subprocess.run([sys.executable, script, *args], cwd=REPO, env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
