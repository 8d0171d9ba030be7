"""The device checks of ``exp/device_check.sh`` (issue 14): MBPO ``ma_l1`` with the
stale-value refit on Hopper and one SLBO ``ma_l1`` iteration, on one device; prints ms per
env step / s per iteration and fails (exit 1) on any tensor that is not on the requested
device (dynamics model parameters and buffers, SAC networks, the value-aware update's and
the refit's torch generators, the value estimator's outputs, the SLBO networks, normalisers
and value-fit optimiser state).

    python exp/device_check.py mbpo --device cuda --steps 500 --work /tmp/dc
    python exp/device_check.py slbo --device cpu --smoke --work /tmp/dc
    python exp/device_check.py mbpo-concurrency --device cuda --k 1 4 8 --work /tmp/dc
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import torch


def _instrument_mbpo(dev: torch.device, problems: list, seen: dict) -> None:
    """Wrap the refit, the value-aware update and the value estimator so each checks the
    devices of what it touches (recorded in ``problems``) and counts its calls in ``seen``."""
    from vaml_ext.mbpo import model_loss, refit, values

    def same(t, what):
        d = t.device if isinstance(t, torch.Tensor) else torch.device(t)
        if d.type != dev.type or (dev.index is not None and d.index != dev.index):
            problems.append(f"{what} on {d}, expected {dev}")

    def check_agent_and_model(ctx, where):
        for n, p in ctx.dynamics_model.named_parameters():
            same(p, f"{where}: dynamics model parameter {n}")
        for n, b in ctx.dynamics_model.named_buffers():
            same(b, f"{where}: dynamics model buffer {n}")
        sac = ctx.agent.sac_agent
        for name in ("critic", "critic_target", "policy"):
            for n, p in getattr(sac, name).named_parameters():
                same(p, f"{where}: SAC {name}.{n}")

    orig_refit = refit.StaleValueRefit.refit

    def checked_refit(self, ctx):
        same(self.generator.device, "refit generator")
        check_agent_and_model(ctx, "refit")
        seen["refits"] += 1
        return orig_refit(self, ctx)

    refit.StaleValueRefit.refit = checked_refit

    orig_call = model_loss.ValueAwareModelUpdate.__call__

    def checked_call(self, batch, optimizer):
        same(self.generator.device, "value-aware update generator")
        if seen["updates"] == 0:
            check_agent_and_model(self.ctx, "value-aware update")
        seen["updates"] += 1
        return orig_call(self, batch, optimizer)

    model_loss.ValueAwareModelUpdate.__call__ = checked_call

    orig_make = values.make_estimator

    def checked_make(name, sac):
        est = orig_make(name, sac)

        def wrapped(true_next, pred_next, generator=None):
            v_true, v_pred = est(true_next, pred_next, generator)
            same(v_true, "estimator V(s')")
            same(v_pred, "estimator V(s_hat)")
            if generator is not None:
                same(generator.device, "estimator generator")
            seen["estimates"] += 1
            return v_true, v_pred

        return wrapped

    values.make_estimator = checked_make
    model_loss.make_estimator = checked_make


def check_mbpo(dev: torch.device, mbpo_steps: int, smoke: bool, work: str) -> int:
    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, run_mbpo

    problems: list = []
    seen = {"refits": 0, "updates": 0, "estimates": 0}
    _instrument_mbpo(dev, problems, seen)
    steps = mbpo_steps
    if smoke:  # every stage of the loop, tiny budgets
        steps = 200
        budget = [*SMOKE_OVERRIDES, "overrides.value_update_interval=2", "overrides.value_refit_batch_size=100"]
    else:
        budget = [
            "algorithm.initial_exploration_steps=250",
            f"overrides.num_steps={steps}",
            "overrides.epoch_length=250",
            "overrides.value_update_interval=5",
            "overrides.num_sac_updates_per_step=10",
            "++overrides.num_epochs_train_model=3",
        ]
    cfg = compose("mbpo_hopper", [f"device={dev}", "seed=0", "overrides.model_loss=ma_l1", *budget])
    t0 = time.perf_counter()
    out = run_mbpo(cfg, os.path.join(work, "mbpo"), silent=True)
    wall = time.perf_counter() - t0
    done = int(max((r["env_step"] for r in out["results"]), default=steps - 1)) + 1
    print(
        f"[device_check] MBPO ma_l1 + refit, Hopper, device {dev}: {done} env steps in {wall:.1f} s = "
        f"{1e3 * wall / done:.1f} ms per env step ({'smoke budget' if smoke else '10 SAC updates/step, 3 model epochs/call'}); "
        f"{seen['updates']} value-aware updates, {seen['refits']} refits, {seen['estimates']} value estimates checked"
    )
    if not seen["refits"] or not seen["updates"]:
        problems.append("no refit / value-aware update ran: nothing was checked")
    if problems:
        print("[device_check] FAIL (MBPO):\n  " + "\n  ".join(sorted(set(problems))[:30]))
        return 1
    print("[device_check] MBPO: every checked tensor and generator on", dev)
    return 0


def check_slbo(dev: torch.device, smoke: bool, work: str) -> int:
    from vaml_ext.slbo.run import build_argv, patched_tree

    tree = patched_tree()
    sys.path.insert(0, str(tree))
    from slbo.utils import flags as slbo_flags

    if dev.type != "cpu" and "device" not in vars(slbo_flags.FLAGS):
        print("[device_check] FAIL (SLBO): the SLBO port has no `device` flag; it runs on CPU only")
        return 1
    log_dir = os.path.join(work, "slbo")
    args = [
        "variant=ma_l1",
        "env=hopper",
        "seed=1",
        f"log_dir={log_dir}",
        "slbo.n_stages=1",
        "slbo.n_iters=1",
        "rollout.n_train_samples=2000",
        "rollout.n_test_samples=1000",
        "ckpt.resume=false",
    ]
    if smoke:
        args += [
            "slbo.n_model_iters=10",
            "slbo.n_policy_iters=2",
            "plan.max_steps=50",
            "plan.n_trpo_samples=400",
            "runner.max_steps=50",
            "vaml.value_update_interval=5",
            "vaml.n_refit_samples=400",
            "rollout.n_train_samples=400",
            "rollout.n_test_samples=400",
        ]
    if "device" in vars(slbo_flags.FLAGS):
        args.append(f"device={dev}")
    from slbo.main import cli

    t0 = time.perf_counter()
    cli(build_argv(args, tree))
    wall = time.perf_counter() - t0
    with open(os.path.join(log_dir, "progress.csv")) as f:
        row = list(csv.DictReader(f))[-1]
    it = float(row["prev_model_time_s"]) + float(row["prev_policy_time_s"])
    print(
        f"[device_check] SLBO ma_l1 (with refits), Hopper, device {dev}: one iteration {it:.1f} s; stage {float(row['prev_stage_time_s']):.1f} s; whole run {wall:.1f} s"
    )
    torch.load(os.path.join(log_dir, "final.pt"), map_location="cpu", weights_only=False)  # the final state loads
    ckpt = torch.load(os.path.join(log_dir, "ckpt", "latest.pt"), map_location=None, weights_only=False)
    problems = []

    def walk(x, where):
        if isinstance(x, torch.Tensor):
            if x.device.type != dev.type and not where.endswith("step"):
                problems.append(f"{where} on {x.device}")
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{where}.{k}")

    walk(ckpt["saver"], "checkpoint saver")
    walk(ckpt["vf_optimizer"]["state"], "value-fit Adam state")
    walk(ckpt["model_optimizer"]["state"], "model Adam state")
    if problems:
        print("[device_check] FAIL (SLBO):\n  " + "\n  ".join(problems[:30]))
        return 1
    print("[device_check] SLBO: networks, normalisers and optimiser states on", dev)
    return 0


#: one MBPO run of the concurrency check, in its own process (argv: work dir, overrides...)
_CONCURRENT_RUN = """
import sys, torch
torch.set_num_threads(1)
from vaml_ext.mbpo.runner import compose, run_mbpo
run_mbpo(compose(sys.argv[2], sys.argv[3:]), sys.argv[1], silent=True)
"""


def check_mbpo_concurrency(dev: torch.device, ks, methods, steps: int, smoke: bool, work: str, env: str) -> int:
    """Throughput of K concurrent MBPO runs on one device (issue 27): K processes, seeds
    0..K-1, the env's own override settings (``mbpo_hopper``: its SAC updates per step, model
    sizes) with the budget cut to ``steps`` env steps; prints total env steps per second and
    the speed-up over K = 1, side by side in one run."""
    import subprocess

    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES

    if smoke:
        steps, budget = 200, [*SMOKE_OVERRIDES, "overrides.value_refit_batch_size=100"]
    else:
        budget = [
            "algorithm.initial_exploration_steps=250",
            f"overrides.num_steps={steps}",
            "overrides.epoch_length=250",
        ]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    penv = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    print(f"[device_check] MBPO concurrency on {dev}, {env}, {steps} env steps per run")
    print("| method | K runs | wall s | env steps/s (all runs) | x K=1 |")
    print("|---|---|---|---|---|")
    failed = 0
    for method in methods:
        base = None
        for k in ks:
            procs, t0 = [], time.perf_counter()
            for i in range(k):
                args = [f"device={dev}", f"seed={i}", f"overrides.model_loss={method}", *budget]
                run_dir = os.path.join(work, f"conc_{method}_k{k}_{i}")
                os.makedirs(run_dir, exist_ok=True)
                with open(run_dir + ".log", "w") as log:  # the runs' own output, apart from the table
                    cmd = [sys.executable, "-c", _CONCURRENT_RUN, run_dir, env, *args]
                    procs.append(subprocess.Popen(cmd, env=penv, stdout=log, stderr=subprocess.STDOUT))
            codes = [pr.wait() for pr in procs]
            wall = time.perf_counter() - t0
            if any(codes):
                print(f"| {method} | {k} | FAILED (exit codes {codes}; logs {work}/conc_{method}_k{k}_*.log) | | |")
                failed += 1
                continue
            rate = k * steps / wall
            base = base or rate
            print(f"| {method} | {k} | {wall:.1f} | {rate:.1f} | {rate / base:.2f} |", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=["mbpo", "slbo", "mbpo-concurrency"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=500, help="MBPO env steps")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets: plumbing only")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4, 8], help="mbpo-concurrency: runs at once")
    ap.add_argument("--methods", nargs="+", default=["mle", "ma_l1"], help="mbpo-concurrency: model losses")
    ap.add_argument("--env", default="mbpo_hopper", help="mbpo-concurrency: the override config")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("[device_check] FAIL: --device cuda but torch.cuda.is_available() is False")
        return 1
    torch.set_num_threads(1)
    if a.part == "mbpo":
        return check_mbpo(dev, a.steps, a.smoke, a.work)
    if a.part == "mbpo-concurrency":
        return check_mbpo_concurrency(dev, a.k, a.methods, a.steps, a.smoke, a.work, a.env)
    return check_slbo(dev, a.smoke, a.work)


if __name__ == "__main__":
    sys.exit(main())
