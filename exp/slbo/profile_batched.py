"""Where a seed's CPU time goes: the one-seed port against the seed-batched runner, by
function (issue 27's profile, to run before optimising either).

    python exp/slbo/profile_batched.py                     # MBBL Pendulum, setting=paper, ma_l1, S = 1 (port) and 8
    python exp/slbo/profile_batched.py --seeds 4 --env hopper -- slbo.n_iters=1

Each side runs in its own process (one torch thread) for one short stage (``--n-iters``
iterations of the paper's 100 model + 40 TRPO updates, 2,000 real steps); the port's
functions that matter (value fit, virtual/real rollouts, TRPO step, model step, advantages,
the refit, diagnostics) and the two batched kernels are wrapped to add up their *exclusive*
thread CPU time (``time.thread_time``: a seed thread parked at the baton costs nothing;
nested wrapped calls are subtracted). Prints seconds per seed for each, side by side.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: (module, attribute path, label): what is timed
TARGETS = [
    ("vaml_ext.slbo.batched.kernels", "fit_values", "value fit (batched kernel)"),
    ("vaml_ext.slbo.batched.kernels", "rollout", "virtual rollouts (batched kernel)"),
    ("slbo.algos.TRPO", "TRPO.train_vf", "value fit (port) / its batching point"),
    ("slbo.algos.TRPO", "TRPO.train", "TRPO step (without the value fit)"),
    ("slbo.utils.runner", "Runner.run", "rollouts (port: virtual and real; batched: real)"),
    ("slbo.utils.runner", "Runner.compute_advantage", "advantages"),
    ("vaml_ext.slbo.model_loss", "RegistryModelLoss.train_step", "model update"),
    ("vaml_ext.slbo.refit", "ValueRefit.__call__", "stale-value refit (Algorithm 2)"),
    ("vaml_ext.slbo.diagnostics", "ModelDiagnostics.__call__", "model diagnostics"),
    ("slbo.main", "main", "everything else (evaluation set-up, collection, checkpoints, logging)"),
]


def _child(argv: list[str], out: str) -> None:
    """In the profiled process: wrap the targets, run the batch (or one seed), dump totals."""
    import importlib

    from vaml_ext.runlog import numerics

    numerics.pin()
    from vaml_ext.slbo.run import patched_tree

    sys.path.insert(0, str(patched_tree()))
    from vaml_ext.slbo.batched import run as batched_run

    batched_run.install_batching_points()  # (a no-op for the one-seed port: no scheduler)
    totals: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    local = threading.local()

    def wrap(owner, name, label):
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*a, **k):
            stack = local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            t0 = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent = time.thread_time() - t0
                nested = stack.pop()
                totals[label] += spent - nested
                calls[label] += 1
                if stack:
                    stack[-1] += spent

        setattr(owner, name, timed)

    for module, path, label in TARGETS:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        wrap(owner, name, label)
    cpu0 = time.process_time()
    if any(a.startswith("seeds=") for a in argv):
        batched_run.run_batch(argv)
    else:
        from vaml_ext.slbo import run as one_seed

        one_seed.main(argv)
    Path(out).write_text(
        json.dumps({"cpu": time.process_time() - cpu0, "totals": dict(totals), "calls": dict(calls)}) + "\n"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="pendulum")
    p.add_argument("--variant", default="ma_l1")
    p.add_argument("--setting", default="paper")
    p.add_argument("--seeds", type=int, default=8, help="S of the batched side")
    p.add_argument("--n-iters", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more key=value flags for both sides (after --)")
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="slbo_profile_"))
    common = [f"variant={a.variant}", f"env={a.env}", f"setting={a.setting}", "ckpt.resume=false"]
    common += ["slbo.n_stages=1", f"slbo.n_iters={a.n_iters}", "rollout.n_train_samples=2000"]
    common += ["rollout.n_test_samples=2000", *a.extra]
    seeds = list(range(1, a.seeds + 1))
    sides = {
        "port (1 seed)": (["seed=1", f"log_dir={work / 'port'}"], 1),
        f"batched (S = {a.seeds})": (
            [f"seeds={','.join(map(str, seeds))}", "log_dirs=" + ",".join(str(work / f"b{s}") for s in seeds)],
            a.seeds,
        ),
    }
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    results = {}
    for label, (args, n) in sides.items():
        out = work / f"{n}.json"
        print(f"[profile] {label} ...", flush=True)
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import profile_batched as p; p._child(sys.argv[1:], {str(out)!r})"
        done = subprocess.run([sys.executable, "-c", code, *common, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        results[label] = (json.loads(out.read_text()), n)
    labels = list(results)
    print(
        f"\nCPU s per seed by function ({a.env}, {a.variant}, setting={a.setting}, {a.n_iters} iteration(s) of one "
        f"stage, 2,000 real steps; exclusive thread time, one thread)\n"
    )
    print("| function | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for _, _, name in TARGETS:
        row = [results[k][0]["totals"].get(name, 0.0) / results[k][1] for k in labels]
        if any(v > 0.005 for v in row):
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    row = [results[k][0]["cpu"] / results[k][1] for k in labels]
    print("| **process CPU** | " + " | ".join(f"**{v:.2f}**" for v in row) + " |")
    print(f"\nport / batched: {row[0] / row[1]:.2f}x per seed (whole short run, fixed costs included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
