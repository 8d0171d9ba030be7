"""Does value-aware SLBO train its model at weight decay 1e-5?  Real runs, per-iteration model diagnostics.

    python exp/slbo/training_check.py --out runs/slbo_training_check              # ma_l1 + slbo, hopper + swimmer
    python exp/slbo/training_check.py --n-iters 6 --weight-decay 0 --variants ma_l1   # a remedy, measured the same way

Each (variant, env) runs the real entry point ``python -m vaml_ext.slbo.run ... setting=paper``
(the authors' settings: 1000-step episodes, 4 virtual envs x 1000 steps, one-step value-aware
loss on 128 real transitions, refit every 20 model updates, value-fit clip 2.0) for stage 0
with ``--n-iters`` full-size iterations (100 model updates, 40 TRPO updates on 4,000 virtual
samples, 10k real training + 10k held-out dev steps); only the policy evaluation is shortened
(``rollout.n_test_samples``), which does not touch learning. The diagnostics hook (patch 0006)
writes per iteration, on 1,000 held-out real transitions: the value-aware loss ``mean |A|``
with the current value net, the one-step normalised MSE ``nmse`` (and ``nmse_ref`` of the
constant "mean difference" predictor an untrained SLBO model makes, ~1), and max |weight|
per model layer. The script prints and writes ``<out>/table.md`` (first vs last iteration)
and ``<out>/diag.csv`` (every iteration of every run).

"Collapse to the weight-decay fixed point" would show as max |W| shrinking back towards
upstream's 1e-5 initial scale and ``nmse / nmse_ref`` staying at 1; training shows as weights
growing and ``nmse`` falling below ``nmse_ref``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_one(variant, env, args, out: Path):
    tag = variant if args.weight_decay is None else f"{variant}_wd{args.weight_decay:g}"
    log_dir = out / env / tag
    cmd = [
        sys.executable,
        "-m",
        "vaml_ext.slbo.run",
        f"variant={variant}",
        f"env={env}",
        f"seed={args.seed}",
        "setting=paper",
        f"log_dir={log_dir}",
        "ckpt.resume=false",
        "slbo.n_stages=1",
        f"slbo.n_iters={args.n_iters}",
        f"rollout.n_test_samples={args.test_samples}",
    ]
    if args.weight_decay is not None:
        cmd.append(f"model.weight_decay={args.weight_decay}")
    envvars = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    t0 = time.time()
    print(f"[start] {env}/{tag}: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=envvars, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{env}/{tag} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with open(log_dir / "model_diag.csv") as f:
        rows = list(csv.DictReader(f))
    print(f"[done] {env}/{tag}: {len(rows)} iterations in {time.time() - t0:.0f} s", flush=True)
    return env, tag, rows


def _f(x, nd=3):
    return f"{float(x):.{nd}g}"


def table(results):
    lines = [
        "| env | variant | iters | VA loss mean\\|A\\| start → end | NMSE start → end (ref end) "
        "| max \\|W\\| per layer start → end | refits |",
        "|---|---|---|---|---|---|---|",
    ]
    for env, tag, rows in results:
        a, b = rows[0], rows[-1]
        layers = sorted(k for k in a if k.startswith("max_abs_w_"))
        w = " ; ".join(f"{_f(a[k], 2)} → {_f(b[k], 2)}" for k in layers)
        lines.append(
            f"| {env} | {tag} | {len(rows)} | {_f(a['mean_abs_adv'])} → {_f(b['mean_abs_adv'])} "
            f"| {_f(a['nmse'])} → {_f(b['nmse'])} ({_f(b['nmse_ref'])}) | {w} | {b['refits_total']} |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "slbo_training_check")
    p.add_argument("--variants", nargs="+", default=["ma_l1", "slbo"])
    p.add_argument("--envs", nargs="+", default=["hopper", "swimmer"])
    p.add_argument("--n-iters", type=int, default=6, help="full-size SLBO iterations of stage 0 (upstream: 20)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--test-samples", type=int, default=2000, help="real steps per policy evaluation")
    p.add_argument("--weight-decay", type=float, default=None, help="model.weight_decay (default: the authors' 1e-5)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--table-only",
        action="store_true",
        help="no runs: tabulate the iterations the runs under --out have logged so far",
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        results = []
        for f in sorted(args.out.glob("*/*/model_diag.csv")):
            with open(f) as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                results.append((f.parent.parent.name, f.parent.name, rows))
    else:
        jobs = [(v, e) for e in args.envs for v in args.variants]
        with ThreadPoolExecutor(args.jobs) as ex:
            results = list(ex.map(lambda ve: run_one(ve[0], ve[1], args, args.out), jobs))
    with open(args.out / "diag.csv", "w", newline="") as f:
        w = None
        for env, tag, rows in results:
            for r in rows:
                r = {"env": env, "variant": tag, **r}
                if w is None:
                    w = csv.DictWriter(f, fieldnames=list(r))
                    w.writeheader()
                w.writerow(r)
    md = table(results)
    (args.out / "table.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
