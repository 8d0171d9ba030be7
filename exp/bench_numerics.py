"""What pinned CPU numerics cost: SLBO seconds per iteration and MBPO seconds per env step,
``VAML_NUMERICS=pinned`` vs ``native``, side by side in one run (alternating, so load on the
machine hits both alike). Prints per-run figures, medians and the pinned / native ratio.

    python exp/bench_numerics.py                       # 3 repeats of each
    python exp/bench_numerics.py --repeats 5 --only slbo

Each run is a fresh process with one thread (what the tests and sweeps run), so the
pins take effect before torch loads (:mod:`vaml_ext.runlog.numerics`). SLBO: Hopper,
``setting=upstream``, ``ma_l1``, 1 stage of ``--slbo-iters`` iterations (seconds per
iteration from the child's CPU time less a zero-iteration run's, i.e. start-up,
collection and evaluation excluded). MBPO: CartPole ``mle`` at the ``cartpole_2k``
regression settings: CPU seconds of a run stopped at ``--mbpo-steps`` env steps less one stopped
at half of them, per env step (start-up excluded).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("native", "pinned")
SLBO_ARGS = [
    "variant=ma_l1",
    "env=hopper",
    "seed=1",
    "slbo.n_stages=1",
    "slbo.n_model_iters=100",
    "slbo.n_policy_iters=10",
    "rollout.n_train_samples=2000",
    "rollout.n_test_samples=1000",
    "plan.n_trpo_samples=2000",
    "ckpt.resume=false",
]
MBPO_CODE = (
    "import sys; from vaml_ext.runlog import numerics; numerics.pin(); "
    "from vaml_ext.mbpo.runner import regression_config, run_mbpo; "
    "cfg = regression_config('cartpole_2k', 'mle', 0, ['overrides.num_steps=' + sys.argv[1]]); "
    "run_mbpo(cfg, sys.argv[2])"
)


def _child_cpu(cmd, mode: str) -> float:
    env = dict(os.environ, VAML_NUMERICS=mode, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES"):
        env.pop(k, None)  # native means the machine's own choice, not an inherited pin
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slbo_per_iter(mode: str, iters: int, tmp: Path) -> float:
    def run(n):
        log_dir = tmp / f"slbo-{mode}-{n}-{os.urandom(4).hex()}"
        cmd = [sys.executable, "-m", "vaml_ext.slbo.run", *SLBO_ARGS, f"slbo.n_iters={n}", f"log_dir={log_dir}"]
        return _child_cpu(cmd, mode)

    return (run(iters) - run(0)) / iters


def mbpo_per_step(mode: str, steps: int, tmp: Path) -> float:
    def run(n):
        cmd = [sys.executable, "-c", MBPO_CODE, str(n), str(tmp / f"mbpo-{mode}-{n}-{os.urandom(4).hex()}")]
        return _child_cpu(cmd, mode)

    return (run(steps) - run(steps // 2)) / (steps - steps // 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("slbo", "mbpo"))
    p.add_argument("--slbo-iters", type=int, default=3)
    p.add_argument("--mbpo-steps", type=int, default=800)
    a = p.parse_args(argv)
    from vaml_ext.runlog.numerics import cpu_info
    from vaml_ext.runlog.rundir import git_provenance

    prov = git_provenance()
    print(f"commit {prov['commit'][:10]}{' (dirty)' if prov['dirty'] else ''}, CPU {cpu_info()}", flush=True)
    benches = {
        "slbo s/iteration": lambda m, t: slbo_per_iter(m, a.slbo_iters, t),
        "mbpo s/env step": lambda m, t: mbpo_per_step(m, a.mbpo_steps, t),
    }
    if a.only:
        benches = {k: v for k, v in benches.items() if k.startswith(a.only)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bench in benches.items():
            got: dict = {m: [] for m in MODES}
            for r in range(a.repeats):
                for m in MODES if r % 2 == 0 else MODES[::-1]:
                    got[m].append(bench(m, Path(tmp)))
                    print(f"  {name:18s} {m:7s} repeat {r + 1}: {got[m][-1]:.5f} CPU s", flush=True)
            med = {m: statistics.median(v) for m, v in got.items()}
            print(
                f"{name:18s} median native {med['native']:.5f}  pinned {med['pinned']:.5f}  "
                f"pinned/native {med['pinned'] / med['native']:.3f}  ({a.repeats} repeats each)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
