"""Seconds per SLBO stage: variants (`slbo`, `mle`, `ma_l1` with Algorithm 2's refit) and
code paths (this tree vs. the port before the issue-14 speed-up), side by side in one run.

    python exp/slbo/bench_stage_time.py                                    # variants, this tree
    python exp/slbo/bench_stage_time.py --compare-base 81225a6 --envs hopper swimmer \\
        --variants slbo ma_l1 --n-iters 2 --stages 1 --train-samples 10000 --test-samples 10000
    python exp/slbo/bench_stage_time.py --compare-base 4046066 --setting paper \\
        --envs pendulum hopper --variants mle ma_l1     # the clipped value fit's fast path (issue 27)

Each run is the real entry point (``python -m vaml_ext.slbo.run``, patched tree) in its own
process with one torch thread, same seed. ``--compare-base COMMIT`` also runs every variant
on the code of COMMIT: a ``git worktree`` of it (``$TMPDIR/vaml-slbo-base-<sha>``, made once,
its patch series applied there) run with its own ``vaml_ext`` on ``PYTHONPATH``; old and new
runs alternate (old, new, old, new, ...) so load on the machine hits both alike.

A full stage (20 iterations of 100 model + 40 TRPO updates, 10k real steps collected, 10k
test steps evaluated) costs tens of minutes on the old path, so the default measures fewer
iterations and extrapolates: per iteration = (model + TRPO time) / iterations (measured from
``progress.csv``), fixed = stage time - that (evaluation, real-data collection, normaliser
update, checkpoint); full stage = fixed + 20 x per iteration + one more evaluation (a full
stage evaluates again at iteration 10; counted here as 1/2 of the fixed cost, an upper bound
as the fixed cost also holds the collection). Wall-clock (``progress.csv``) and the child's
CPU seconds (``getrusage``, whole process incl. start-up) are both printed. On a loaded machine
wall-clock mostly measures the load: each run's CPU share (CPU s / wall s) scales its wall-clock
figures to CPU seconds ("CPU" columns), the ratio to read when runs got different shares.

``--batch S [S ...]`` also runs each variant through the seed-batched runner
(``python -m vaml_ext.slbo.batched.run``, issue 27) on seeds ``seed .. seed+S-1`` and prints
CPU seconds *per seed-iteration* against the one-seed port's, side by side: a batch's
seeds share one process and its wall-clock, so its per-iteration time is divided by S;
its first seed's returns must equal the one-seed run's (printed: "same numbers").

``--at-once N`` then starts N copies of every run together and prints their throughput (runs
per hour) against the run alone: what N runs on N cores give (less than N x where they
contend for memory bandwidth or caches).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FULL_ITERS = 20


def base_tree(commit: str) -> Path:
    """A worktree of ``commit`` with its own patched SLBO tree (built once, reused)."""
    sha = subprocess.check_output(["git", "rev-parse", commit], cwd=REPO, text=True).strip()
    tree = Path(os.environ.get("TMPDIR", "/tmp")) / f"vaml-slbo-base-{sha[:10]}"
    if not (tree / ".git").exists():
        print(f"[bench] git worktree of {sha[:10]} at {tree}", flush=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO, check=True, capture_output=True
        )
    if not (tree / "third_party" / "slbo-patched" / "slbo" / "main.py").exists():
        env = dict(os.environ, PYTHONPATH=str(tree))
        subprocess.run(
            [sys.executable, "-m", "vaml_ext.patching", "--repo", str(tree), "apply", "slbo"],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
        )
    return tree


def _command(variant, env_name, args, log_dir: Path, root: Path, batch: int = 0):
    if batch:  # the seed-batched runner: seeds seed .. seed+batch-1, log_dir/seed<k> each
        seeds = range(args.seed, args.seed + batch)
        who = ["vaml_ext.slbo.batched.run", f"seeds={','.join(map(str, seeds))}"]
        who.append("log_dirs=" + ",".join(str(log_dir / f"seed{k}") for k in seeds))
    else:
        who = ["vaml_ext.slbo.run", f"seed={args.seed}", f"log_dir={log_dir}"]
    cmd = [
        sys.executable,
        "-m",
        who[0],
        f"variant={variant}",
        f"env={env_name}",
        *who[1:],
        "ckpt.resume=false",
        f"slbo.n_stages={args.stages}",
        f"slbo.n_iters={args.n_iters}",
        f"slbo.n_model_iters={args.model_iters}",
        f"slbo.n_policy_iters={args.policy_iters}",
        f"rollout.n_train_samples={args.train_samples}",
        f"rollout.n_test_samples={args.test_samples}",
        f"setting={args.setting}",
    ]
    if batch and args.batch_device != "cpu":  # the batched runner on a GPU (its device path); the port on CPU
        cmd.append(f"device={args.batch_device}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), PYTHONPATH=str(root))
    env.pop("SLBO_PATCHED", None)
    return cmd, env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_variant(variant, env_name, args, out_dir: Path, root: Path, batch: int = 0):
    log_dir = out_dir / (f"{variant}-batch{batch}" if batch else variant)
    cmd, env = _command(variant, env_name, args, log_dir, root, batch)
    before = _children_cpu()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    cpu = _children_cpu() - before
    progress = log_dir / f"seed{args.seed}" / "progress.csv" if batch else log_dir / "progress.csv"
    with open(progress) as f:
        rows = [r for r in csv.DictReader(f) if int(r["stage"]) >= 1]  # row T: times of stage T-1
    stage = [float(r["prev_stage_time_s"]) for r in rows]
    it = [(float(r["prev_model_time_s"]) + float(r["prev_policy_time_s"])) / args.n_iters for r in rows]
    fixed = [s - i * args.n_iters for s, i in zip(stage, it)]
    full = [f * 1.5 + FULL_ITERS * i for f, i in zip(fixed, it)]
    final = float(rows[-1]["real_return_mean"]) if rows else float("nan")
    share = cpu / wall  # the share of one core the run got: scales its wall-clock to CPU seconds
    return {
        "stage": stage,
        "iter": it,
        "fixed": fixed,
        "full": full,
        "cpu": cpu,
        "wall": wall,
        "share": share,
        "full_cpu": [x * share for x in full],
        "return": final,
        "returns": [r["real_return_mean"] for r in rows],
        "progress": progress,
    }


def run_at_once(n: int, variant, env_name, args, out_dir: Path, root: Path):
    """``n`` copies of one run started together (throughput of ``n`` runs on the machine's
    cores): wall-clock until the last ends, and the runs' CPU seconds together."""
    procs = []
    before = _children_cpu()
    t0 = time.perf_counter()
    for k in range(n):
        cmd, env = _command(variant, env_name, args, out_dir / f"{variant}-{k}", root)
        procs.append(subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [proc.communicate()[0] for proc in procs]
    wall = time.perf_counter() - t0
    for proc, out in zip(procs, outs):
        if proc.returncode != 0:
            raise SystemExit(f"{variant} (run {n} at once) failed:\n{out.decode(errors='replace')[-3000:]}")
    return {"wall": wall, "cpu": _children_cpu() - before}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["hopper"])
    p.add_argument("--variants", nargs="+", default=["slbo", "mle", "ma_l1"])
    p.add_argument(
        "--compare-base",
        default=None,
        metavar="COMMIT",
        help="also run the code of COMMIT (e.g. 81225a6, before the speed-up) side by side",
    )
    p.add_argument("--stages", type=int, default=1)
    p.add_argument("--n-iters", type=int, default=2)
    p.add_argument("--model-iters", type=int, default=100)
    p.add_argument("--policy-iters", type=int, default=40)
    p.add_argument("--train-samples", type=int, default=10000)
    p.add_argument("--test-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--setting",
        choices=["upstream", "paper"],
        default="upstream",
        help="the port's settings: upstream's, or the authors' (setting=paper: value-net clip, refit for every loss)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    p.add_argument(
        "--at-once",
        type=int,
        default=0,
        metavar="N",
        help="also start N copies of each run together and compare their throughput with the run alone",
    )
    p.add_argument(
        "--batch",
        nargs="+",
        type=int,
        default=[],
        metavar="S",
        help="also run the seed-batched runner on S seeds (each S given) and compare CPU s per seed-iteration",
    )
    p.add_argument(
        "--batch-device",
        default="cpu",
        help="device of the --batch runs (cuda: the relaxed device path, compared by wall-clock s per "
        "seed-iteration against the one-seed port's CPU s on one core; numbers not required equal)",
    )
    args = p.parse_args(argv)
    if any(b < 1 for b in args.batch):
        p.error("--batch S needs S >= 1")
    if args.at_once < 0 or args.at_once == 1:
        p.error("--at-once N needs N >= 2 (0: off)")

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="slbo_bench_"))
    paths = [("new", REPO)]
    if args.compare_base:
        paths.insert(0, (f"base {args.compare_base}", base_tree(args.compare_base)))
    results = {}
    for env_name in args.envs:
        for v in args.variants:
            for label, root in paths:
                r = run_variant(v, env_name, args, out_dir / env_name / label.split()[0], root)
                results[(env_name, v, label)] = r
                print(
                    f"[bench] {env_name:8s} {v:6s} {label:14s} stage {r['stage'][0]:7.1f} s "
                    f"({args.n_iters} it: {r['iter'][0]:6.1f} s each, fixed {r['fixed'][0]:5.1f} s) -> full stage "
                    f"~{r['full'][0]:7.1f} s; process CPU {r['cpu']:7.1f} s of {r['wall']:.1f} s wall (share "
                    f"{r['share']:.2f}) -> full stage ~{r['full_cpu'][0]:7.1f} CPU s; return {r['return']:.2f}",
                    flush=True,
                )

    print(
        f"\n{args.n_iters} iteration(s) of ({args.model_iters} model + {args.policy_iters} TRPO updates), "
        f"{args.train_samples} real samples, {args.test_samples} test samples, {args.threads} thread(s), "
        f"setting={args.setting}; "
        f"full stage = 1.5 x fixed + {FULL_ITERS} x per-iteration; runs in {out_dir}"
    )
    hdr = (
        "| env | variant | code | s / iteration | fixed s | full stage s (extrap.) | CPU share | "
        "full stage CPU s (extrap.) |"
    )
    if args.compare_base:
        hdr += " speed-up / iteration (wall) | speed-up / full stage (wall) | speed-up / full stage (CPU) |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for (env_name, v, label), r in results.items():
        line = (
            f"| {env_name} | {v} | {label} | {statistics.median(r['iter']):.2f} | "
            f"{statistics.median(r['fixed']):.1f} | {statistics.median(r['full']):.0f} | {r['share']:.2f} | "
            f"{statistics.median(r['full_cpu']):.0f} |"
        )
        if args.compare_base:
            b = results[(env_name, v, paths[0][0])]
            line += (
                f" {statistics.median(b['iter']) / statistics.median(r['iter']):.2f}x |"
                f" {statistics.median(b['full']) / statistics.median(r['full']):.2f}x |"
                f" {statistics.median(b['full_cpu']) / statistics.median(r['full_cpu']):.2f}x |"
            )
        print(line)
    if args.batch:
        _batch_table(args, out_dir, results)
    if args.at_once:
        n = args.at_once
        print(
            f"\nthroughput: {n} copies of each run started together vs. the run alone (above), "
            f"{os.cpu_count()} cores, {args.threads} thread(s) per run"
        )
        print(
            f"| env | variant | code | alone: wall s | {n} at once: wall s | runs / hour alone | "
            f"runs / hour, {n} at once | gain (ideal {n}x) | CPU s per run alone / at once |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for (env_name, v, label), r in results.items():
            root = dict(paths)[label]
            b = run_at_once(n, v, env_name, args, out_dir / env_name / (label.split()[0] + f"-x{n}"), root)
            alone, together = 3600 / r["wall"], 3600 * n / b["wall"]
            print(
                f"| {env_name} | {v} | {label} | {r['wall']:.1f} | {b['wall']:.1f} | {alone:.1f} | {together:.1f} | "
                f"{together / alone:.2f}x | {r['cpu']:.1f} / {b['cpu'] / n:.1f} |",
                flush=True,
            )


def _batch_table(args, out_dir: Path, results: dict) -> None:
    """The seed-batched runner at each S of ``--batch`` against the one-seed port (this tree):
    CPU seconds per seed-iteration (wall per iteration x CPU share / S)."""
    rows = []
    for env_name in args.envs:
        for v in args.variants:
            port = results[(env_name, v, "new")]
            port_cpu = statistics.median(port["iter"]) * port["share"]
            for b in args.batch:
                r = run_variant(v, env_name, args, out_dir / env_name / "batch", REPO, batch=b)
                on_cpu = args.batch_device == "cpu"
                # off the CPU: wall-clock (the GPU's time is not the process's CPU time)
                cpu = statistics.median(r["iter"]) * (r["share"] if on_cpu else 1.0) / b
                same = r["returns"] == port["returns"] if on_cpu else None  # the device path is relaxed
                rows.append((env_name, v, b, port_cpu, cpu, same))
                print(
                    f"[bench] {env_name:8s} {v:6s} batch S={b:<3d} {statistics.median(r['iter']):7.1f} s per batch "
                    f"iteration (share {r['share']:.2f}) -> {cpu:6.2f} CPU s per seed-iteration vs port "
                    f"{port_cpu:6.2f}; seed {args.seed} same numbers as alone: {same}",
                    flush=True,
                )
    where = "" if args.batch_device == "cpu" else f"; batched on {args.batch_device}: wall s (port: CPU s, one core)"
    print(
        f"\nseed-batched runner vs the one-seed port: CPU s per seed-iteration ({args.model_iters} model + "
        f"{args.policy_iters} TRPO updates), setting={args.setting}, {args.threads} thread(s){where}"
    )
    print("| env | variant | S | port CPU s / seed-iteration | batched | speed-up | seed's numbers as alone |")
    print("|---|---|---|---|---|---|---|")
    for env_name, v, b, port_cpu, cpu, same in rows:
        print(f"| {env_name} | {v} | {b} | {port_cpu:.2f} | {cpu:.2f} | {port_cpu / cpu:.2f}x | {same} |")
    if any(r[-1] is False for r in rows):
        raise SystemExit("a batched seed's returns differ from the one-seed port's (see the table)")


if __name__ == "__main__":
    main()
