"""Seconds per SLBO stage on Hopper for `slbo`, `mle` and `ma_l1` (with Algorithm 2's refit).

    python exp/slbo/bench_stage_time.py                 # short budget (a few minutes on 1 core)
    python exp/slbo/bench_stage_time.py --n-iters 20 --stages 3 --train-samples 10000 --test-samples 10000

Each variant runs the real entry point (``python -m vaml_ext.slbo.run``, patched tree) in
its own process with one torch thread, one after another, same seed. The default budget
keeps one *full* SLBO iteration per stage (100 model updates -> 5 refits, 40 TRPO updates
on 4,000 virtual samples), so the "iteration" ratio (model + TRPO loops, refit included)
is the full-budget ratio; only the per-stage fixed costs (real-data collection,
evaluation) are scaled down (``--train-samples``/``--test-samples``), and they are the same
for every variant, so the whole-stage ratio at full budget (20 iterations per stage) lies
between the two printed ratios, nearer the iteration ratio.
Stages after the first are timed (``prev_*_time_s`` columns of ``progress.csv``).
Target (issue 5): ma_l1 with refit <= 1.3 x slbo.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_variant(variant, args, out_dir: Path):
    log_dir = out_dir / variant
    cmd = [sys.executable, "-m", "vaml_ext.slbo.run", f"variant={variant}", f"env={args.env}", f"seed={args.seed}",
           f"log_dir={log_dir}", "ckpt.resume=false", f"slbo.n_stages={args.stages}", f"slbo.n_iters={args.n_iters}",
           f"slbo.n_model_iters={args.model_iters}", f"slbo.n_policy_iters={args.policy_iters}",
           f"rollout.n_train_samples={args.train_samples}", f"rollout.n_test_samples={args.test_samples}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    with open(log_dir / "progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["stage"]) >= 2]  # stages 1.. (skip stage 0: warm-up)
    if not rows:
        with open(log_dir / "progress.csv") as f:
            rows = [r for r in csv.DictReader(f) if int(r["stage"]) >= 1]
    stage = [float(r["prev_stage_time_s"]) for r in rows]
    it = [float(r["prev_model_time_s"]) + float(r["prev_policy_time_s"]) for r in rows]
    model = [float(r["prev_model_time_s"]) for r in rows]
    refit = None
    for line in (log_dir / "log.txt").read_text().splitlines():
        if "[refit]" in line and "s in total" in line:  # "[refit] N value refits so far, X s in total"
            words = line.split("[refit]", 1)[1].split()
            refit = (int(words[0]), float(words[5]))
    return stage, it, model, refit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--variants", nargs="+", default=["slbo", "mle", "ma_l1"])
    p.add_argument("--stages", type=int, default=3)
    p.add_argument("--n-iters", type=int, default=1)
    p.add_argument("--model-iters", type=int, default=100)
    p.add_argument("--policy-iters", type=int, default=40)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    args = p.parse_args(argv)

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="slbo_bench_"))
    results = {}
    for v in args.variants:
        results[v] = run_variant(v, args, out_dir)
        s, it, m, _ = results[v]
        print(f"{v:>12}: seconds per stage {[round(x, 1) for x in s]}  (model loop {[round(x, 1) for x in m]})",
              flush=True)
    base = results.get("slbo")
    print(f"\n{args.env}, {args.n_iters} iteration(s)/stage x ({args.model_iters} model + {args.policy_iters} TRPO "
          f"updates), {args.train_samples} real samples/stage, {args.threads} thread(s); runs in {out_dir}")
    print(f"{'variant':>12} {'median s/stage':>15} {'ratio':>7} {'median s/iter':>14} {'ratio':>7}")
    for v, (s, it, m, _) in results.items():
        ms, mi = statistics.median(s), statistics.median(it)
        rs = ms / statistics.median(base[0]) if base else float("nan")
        ri = mi / statistics.median(base[1]) if base else float("nan")
        print(f"{v:>12} {ms:15.1f} {rs:7.2f} {mi / args.n_iters:14.1f} {ri:7.2f}")
    if base and "ma_l1" in results:
        r = statistics.median(results["ma_l1"][0]) / statistics.median(base[0])
        print(f"\nma_l1 (refit every 20 model updates) / slbo, per stage: {r:.2f} (target <= 1.3)")
        refit = results["ma_l1"][3]
        if refit:
            n, sec = refit
            per_iter = sec / (args.stages * args.n_iters)
            base_iter = min(base[1]) / args.n_iters
            print(f"refit cost: {n} refits, {sec / n:.2f} s each, {per_iter:.1f} s per iteration; "
                  f"(fastest slbo iteration {base_iter:.1f} s + refit) / slbo = {(base_iter + per_iter) / base_iter:.2f}"
                  " -- the refit overhead alone, insensitive to other load on the machine")


if __name__ == "__main__":
    main()
