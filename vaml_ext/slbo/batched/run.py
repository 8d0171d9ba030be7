"""Several seeds of one SLBO variant in one process, batched and exact per seed (issue 27).

    python -m vaml_ext.slbo.batched.run variant=ma_l1 env=pendulum setting=paper seeds=1,2,3,4 [key=value ...]

Arguments as :mod:`vaml_ext.slbo.run` (``variant``, ``env``, ``setting``, upstream flags),
with ``seeds=`` (comma-separated) instead of ``seed=``, and optionally ``log_dirs=`` (one
per seed, comma-separated; default: each seed's one-seed default,
``runs/slbo/[<setting>/]<env>/<variant>/seed<seed>``). Each seed's run directory ends up
exactly as ``python -m vaml_ext.slbo.run ... seed=<seed> log_dir=<dir>`` leaves it: the same
numbers bit for bit, its own ``log.txt``, ``progress.csv``, checkpoints and ``done.json``;
a killed batch started again resumes every seed from its own checkpoint, a finished seed
is evaluated-and-skipped as a one-seed run would be. A seed that fails is retired
(``failed.json`` in its directory); the others finish. Exit status 1 if any seed failed.

How: :mod:`vaml_ext.slbo.batched.scheduler` (one thread per seed, one baton) and the
kernels of :mod:`vaml_ext.slbo.batched.kernels` at the port's value fits and virtual
rollouts. Faster per seed where the batched value fit pays (``exp/slbo/bench_batched.py``,
``exp/slbo/bench_stage_time.py --batch``).

On a GPU (``device=cuda``) the virtual rollouts run whole on the device
(:mod:`vaml_ext.slbo.batched.device`: relaxed numbers, every draw still the port's);
``$VAML_SLBO_DEVICE_ROLLOUT=1`` takes that path on the CPU too (to test it without a GPU).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from vaml_ext.runlog.lock import RunInUse, RunLock
from vaml_ext.runlog.rundir import read_csv_rows

_installed = False


def install_batching_points() -> None:
    """Route the port's ``TRPO.train_vf`` and ``Runner.run`` through the scheduler when
    called from a seed thread of a batch (outside one: the port's own code, untouched)."""
    global _installed
    if _installed:
        return

    from slbo.algos.TRPO import TRPO
    from slbo.utils.runner import Runner
    from vaml_ext.slbo.batched import kernels, scheduler

    port_train_vf, port_run = TRPO.train_vf, Runner.run

    def train_vf(self, dataset):
        sched = scheduler.current()
        request = kernels.vf_request(self, dataset) if sched is not None and not sched.alone() else None
        if request is None:
            return port_train_vf(self, dataset)
        sched.submit("vf", request)
        return request.loss  # as the end of TRPO.train_vf: get_vf_loss after the fit (kernels.fit_values)

    def run(self, policy, n_samples):
        sched = scheduler.current()
        request = None
        if sched is not None:  # a seed alone: the port's own rollout, except on the device path
            request = kernels.rollout_request(self, policy, n_samples, device_only=sched.alone())
        if request is None:
            return port_run(self, policy, n_samples)
        sched.submit("rollout", request)
        return request.result

    train_vf.__doc__, run.__doc__ = port_train_vf.__doc__, port_run.__doc__
    TRPO.train_vf, Runner.run = train_vf, run
    _installed = True


def _parse(argv: list[str]) -> tuple[list[int], list[str] | None, list[str]]:
    seeds, log_dirs, rest = None, None, []
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {a!r}")
        if key == "seeds":
            try:
                seeds = [int(s) for s in value.split(",") if s]
            except ValueError:
                raise SystemExit(f"seeds={value!r}: expected comma-separated integers, e.g. seeds=1,2,3") from None
        elif key == "log_dirs":
            log_dirs = [d for d in value.split(",") if d]
        elif key in ("seed", "log_dir"):
            raise SystemExit(f"{key}= is per seed here: use seeds=1,2,... (and log_dirs=a,b,...)")
        elif key.startswith("wandb"):
            raise SystemExit("wandb is not supported by the batched runner; run seeds one at a time for W&B")
        else:
            rest.append(a)
    if not seeds:
        raise SystemExit("seeds= is required, e.g. seeds=1,2,3")
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"seeds={','.join(map(str, seeds))}: each seed once")
    if log_dirs is not None and len(log_dirs) != len(seeds):
        raise SystemExit(f"log_dirs= names {len(log_dirs)} directories for {len(seeds)} seeds")
    return seeds, log_dirs, rest


def _seed_args(rest: list[str], seed: int, log_dir: str | None, tree: Path) -> list[str]:
    from vaml_ext.slbo.run import build_argv

    return build_argv([*rest, f"seed={seed}", *([f"log_dir={log_dir}"] if log_dir else [])], tree)


def _write_failed(log_dir: Path, error_text: str, seconds: float) -> None:
    tail = "\n".join(error_text.strip().splitlines()[-40:])
    (log_dir / "failed.json").write_text(
        json.dumps({"returncode": 1, "seconds": round(seconds, 1), "log_tail": tail}, indent=2) + "\n"
    )


def run_batch(argv: list[str]) -> list[tuple[Path, BaseException | None]]:
    """Run the batch; returns each seed's log_dir and its error (None if it finished)."""
    from vaml_ext.runlog import numerics

    numerics.pin()  # before slbo imports torch
    from vaml_ext.runlog import tracking
    from vaml_ext.slbo.run import patched_tree

    seeds, log_dirs, rest = _parse(argv)
    tree = patched_tree()
    args = [_seed_args(rest, s, None if log_dirs is None else log_dirs[i], tree) for i, s in enumerate(seeds)]
    if str(tree) not in sys.path:
        sys.path.insert(0, str(tree))
    import slbo.main as slbo_main
    from slbo.utils.flags import FLAGS, parse_flags
    from vaml_ext.slbo.batched import kernels
    from vaml_ext.slbo.batched.scheduler import SEED_FLAGS, SeedScheduler
    from vaml_ext.slbo.mbbl_envs import register

    register()
    if not hasattr(FLAGS, "vaml"):
        raise SystemExit(f"`slbo` was imported from {sys.modules['slbo'].__file__}, not the patched tree {tree}")
    snapshots = []
    for a in args:  # every seed's flags; they may differ only in the per-seed ones
        parse_flags(a)
        snapshots.append(FLAGS.snapshot())
    for s, snap in zip(seeds[1:], snapshots[1:]):
        diff = sorted(k for k in set(snap) | set(snapshots[0]) if snap.get(k) != snapshots[0].get(k))
        if set(diff) - set(SEED_FLAGS):
            raise SystemExit(
                f"seed {s}'s flags differ from seed {seeds[0]}'s in {diff}: one batch is one configuration"
            )
    parse_flags(args[0])  # the shared configuration; the scheduler swaps in each seed's SEED_FLAGS
    dirs = [Path(snap["log_dir"]) for snap in snapshots]
    locks = []
    try:
        for d in dirs:
            try:
                locks.append(RunLock(d).acquire())
            except RunInUse as e:
                raise SystemExit(f"slbo batch: {e}") from None
        install_batching_points()
        fns = [slbo_main.main for _ in seeds]
        flags = [{k: snap.get(k) for k in SEED_FLAGS} for snap in snapshots]
        sched = SeedScheduler(seeds, fns, flags, {"vf": kernels.fit_values, "rollout": kernels.rollout})
        t0 = time.time()
        print(
            f"[slbo batch] seeds {','.join(map(str, seeds))}: one process, batched value fits and rollouts", flush=True
        )
        outcomes = sched.run()
        seconds = time.time() - t0
        results = []
        for seed_run, d, (_, error) in zip(sched.seeds, dirs, outcomes):
            if error is None:
                tracking.finish_run(
                    read_csv_rows(d / "progress.csv"),
                    None,
                    d,
                    tag=os.environ.get("VAML_RUN_TAG") or f"slbo {d}",
                    step_key="n_real_samples",
                    return_key="real_return_mean",
                )
            else:
                _write_failed(d, seed_run.error_text, seconds)
                print(
                    f"[slbo batch] seed {seed_run.seed} failed ({type(error).__name__}: {error}); see {d}/failed.json"
                )
            results.append((d, error))
        print(f"[slbo batch] {sched.rounds} rounds, served {sched.served}, {seconds:.0f} s", flush=True)
        return results
    finally:
        for lock in locks:
            lock.release()


def main(argv=None) -> int:
    results = run_batch(sys.argv[1:] if argv is None else argv)
    return 1 if any(e is not None for _, e in results) else 0


if __name__ == "__main__":
    sys.exit(main())
