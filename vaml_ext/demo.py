"""``make demo``: MBPO with MLE vs. value-aware (MA-L1) models, side by side.

Runs upstream's entry point (``python -m mbrl.examples.main``) of the *patched*
mbrl-lib once per model loss on the same env, seed and budget, streams each run's
per-epoch evaluation return, then prints both return curves' final values and the
wall-clock ratio, and where everything was written.

    python -m vaml_ext.demo                       # built-in default (about 5 min on 2 CPU cores)
    python -m vaml_ext.demo --losses mle ma_l1 ma_vaml --steps 4000 --env mbpo_inv_pendulum

The default is paper Fig. 3's CartPole at the figure's ``short`` preset (upstream
mbrl-lib CartPole: 5,000 exploration steps, then 200-step epochs; 10 SAC updates per
step instead of 20, model training capped at 20 epochs per call), stopped after 2,000
env steps -- the setting of the MA-L1 learning regression
(``vaml_ext.mbpo.runner.REGRESSIONS["cartpole_2k"]``), where both losses learn. Runs go
``--jobs`` at a time, one CPU thread each, so the wall-clock ratio compares like with
like.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from vaml_ext.mbpo.runner import REGRESSIONS

DEFAULT_ENV = "mbpo_cartpole"
DEFAULT_LOSSES = ("mle", "ma_l1")
DEFAULT_STEPS = 2000
#: Per-env budget settings on top of the upstream override. CartPole: those of the
#: ``cartpole_2k`` learning regression (Fig. 3 short preset, upstream 5,000-step
#: exploration kept). Any other env: a 500-step warm-up and model training capped at 25
#: epochs per call.
ENV_OVERRIDES = {
    "mbpo_cartpole": tuple(o for o in REGRESSIONS["cartpole_2k"][1]
                           if not o.startswith(("device=", "overrides.num_steps="))),
}
OTHER_OVERRIDES = ("algorithm.initial_exploration_steps=500", "++overrides.num_epochs_train_model=25")
_PRINT = threading.Lock()


def demo_overrides(env: str):
    return ENV_OVERRIDES.get(env, OTHER_OVERRIDES)


def _say(msg: str) -> None:
    with _PRINT:
        print(msg, flush=True)


def _read(path: Path):
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def run_one(loss: str, env: str, steps: int, seed: int, out: Path, extra) -> dict:
    run_dir = out / loss
    cmd = [
        sys.executable, "-m", "mbrl.examples.main", "algorithm=mbpo", f"overrides={env}",
        f"overrides.model_loss={loss}", f"overrides.num_steps={steps}", f"seed={seed}",
        f"hydra.run.dir={run_dir}", *demo_overrides(env), *extra,
    ]
    env_vars = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                "PYTHONUNBUFFERED": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
    _say(f"[{loss}] {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    log_path = out / f"{loss}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_vars)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith("| results") or line.startswith("| va_model"):
                elapsed = time.perf_counter() - t0
                _say(f"[{loss} {elapsed:6.0f}s] {line.strip()}")
        rc = proc.wait()
    seconds = time.perf_counter() - t0
    if rc != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(f"[{loss}] failed (exit {rc}); see {log_path}:\n" + "\n".join(tail))
    rows = _read(run_dir / "results.csv")
    return {"loss": loss, "dir": run_dir, "seconds": seconds, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=DEFAULT_ENV, help=f"an MBPO override (default {DEFAULT_ENV})")
    p.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="env steps per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs at a time, one CPU thread each (default: 2 if the machine has 2 cores)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("extra", nargs="*", help="further Hydra overrides, e.g. overrides.va_loss_coeff=0.02")
    a = p.parse_args(argv)
    if a.steps <= 0:
        p.error("--steps must be positive")
    if a.jobs < 1:
        p.error("--jobs must be >= 1")
    from vaml_ext.losses import available_losses

    import mbrl

    conf = Path(mbrl.__file__).parent / "examples" / "conf" / "overrides"
    mbpo_envs = sorted(f.stem for f in conf.glob("mbpo_*.yaml"))
    if a.env not in mbpo_envs:
        p.error(f"unknown --env {a.env!r}; valid: {', '.join(mbpo_envs)}")
    bad = [x for x in a.losses if x not in available_losses()]
    if bad:
        p.error(f"unknown loss(es) {bad}; valid: {', '.join(available_losses())}")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"MBPO demo: env={a.env} losses={a.losses} steps={a.steps} seed={a.seed} jobs={a.jobs} -> {out}")
    print(f"settings: {' '.join(demo_overrides(a.env))}", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(a.jobs) as pool:
        results = list(pool.map(lambda loss: run_one(loss, a.env, a.steps, a.seed, out, a.extra), a.losses))

    base = next((r for r in results if r["loss"] == "mle"), results[0])
    print("\n== MBPO demo summary ==")
    print(f"{'loss':10s} {'final return':>12s} {'last-5 mean':>12s} {'best return':>12s} {'wall-clock s':>12s} "
          f"{'ratio':>7s}")
    for r in results:
        rets = [row["episode_reward"] for row in r["rows"]]
        final = rets[-1] if rets else float("nan")
        last5 = sum(rets[-5:]) / len(rets[-5:]) if rets else float("nan")
        best = max(rets) if rets else float("nan")
        print(f"{r['loss']:10s} {final:12.1f} {last5:12.1f} {best:12.1f} {r['seconds']:12.0f} "
              f"{r['seconds'] / base['seconds']:7.2f}")
    for r in results:
        curve = " ".join(f"{row['episode_reward']:.0f}" for row in r["rows"])
        print(f"  {r['loss']} return per epoch: {curve}")
    print(f"\nResults: {out}/<loss>/ (results.csv, va_model.csv, model_train.csv, tb/, "
          f".hydra/config.yaml, checkpoints); logs: {out}/<loss>.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
