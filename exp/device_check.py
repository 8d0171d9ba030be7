"""The device checks of ``exp/device_check.sh`` (issue 14): MBPO ``ma_l1`` with the
stale-value refit on Hopper and one SLBO ``ma_l1`` iteration, on one device; prints ms per
env step / s per iteration and fails (exit 1) on any tensor that is not on the requested
device (dynamics model parameters and buffers, SAC networks, the value-aware update's and
the refit's torch generators, the value estimator's outputs, the SLBO networks, normalisers
and value-fit optimiser state).

    python exp/device_check.py mbpo --device cuda --steps 500 --work /tmp/dc
    python exp/device_check.py slbo --device cpu --smoke --work /tmp/dc
    python exp/device_check.py mbpo-concurrency --device cuda --k 1 4 8 --work /tmp/dc
    python exp/device_check.py slbo-batch --device cuda --work /tmp/dc   # issue 27: the batched device path
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


def check_slbo_batch(dev: torch.device, smoke: bool, work: str, n_seeds: int, stat_seeds: int) -> int:
    """The seed-batched SLBO runner's device path (issue 27 part 4) against its exact CPU
    kernels: (1) relaxed lockstep of S rollouts (MBBL Pendulum 20 x 50 steps, Hopper 4 x 50)
    and S value fits on ``dev`` against the same on the CPU, tolerances stated; (2) unless
    ``stat_seeds`` is 0, whole short runs: ``stat_seeds`` seeds batched on ``dev`` against
    the same seeds batched on the CPU (exact: each the one-seed port's numbers), final real
    returns compared per seed (paired; mean difference with a bootstrap 95 % CI)."""
    import subprocess

    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "slbo"))
    from vaml_ext.slbo.run import patched_tree

    sys.path.insert(0, str(patched_tree()))
    import bench_batched as bb  # exp/slbo: the benchmark's setups (paper-setting sizes)

    from vaml_ext.slbo.batched import kernels
    from vaml_ext.slbo.mbbl_envs import register

    register()
    state_tol, reward_tol, vf_tol = 1e-3, 1e-2, 1e-3
    failed = []
    for env_name in ("pendulum", "hopper"):
        env_id, n_envs, _ = bb.ENVS[env_name]
        sides = {}
        for side, d in (("exact", torch.device("cpu")), ("device", dev)):
            setups = [bb._rollout_setup(s, env_id, n_envs, 1000) for s in range(n_seeds)]
            requests = []
            for s, (runner, policy) in enumerate(setups):
                runner.env._model.to(d), policy.to(d)
                np.random.seed(s)
                requests.append(kernels.rollout_request(runner, policy, n_envs * 50, device_path=side == "device"))
            t0 = time.perf_counter()
            kernels.rollout(requests)
            sides[side] = ([r.result for r in requests], time.perf_counter() - t0)
        (exact, t_cpu), (relaxed, t_dev) = sides["exact"], sides["device"]
        ds = max(
            float(np.max(np.abs(a[0].data["next_state"] - b[0].data["next_state"]))) for a, b in zip(exact, relaxed)
        )
        dr = max(float(np.max(np.abs(a[0].data["reward"] - b[0].data["reward"]))) for a, b in zip(exact, relaxed))
        same_eps = all(len(a[1]) == len(b[1]) for a, b in zip(exact, relaxed))
        ok = ds <= state_tol and dr <= reward_tol and same_eps
        failed += [] if ok else [f"rollout {env_name}"]
        print(
            f"[device_check] batched rollout {env_name}, S={n_seeds}, 50 steps: max |state diff| {ds:.2e} (tol "
            f"{state_tol:g}), max |reward diff| {dr:.2e} (tol {reward_tol:g}), same episode ends {same_eps}; "
            f"{t_cpu * 1e3 / n_seeds:.1f} ms/seed exact CPU kernel vs {t_dev * 1e3 / n_seeds:.1f} device path on {dev}"
        )
    fits = {}
    for side, d in (("exact", torch.device("cpu")), ("device", dev)):
        setups = [bb._vf_setup(s, 3, 4000) for s in range(n_seeds)]
        requests = []
        for s, (algo, data) in enumerate(setups):
            algo.vf.to(d)
            np.random.seed(s)
            requests.append(kernels.vf_request(algo, data))
        t0 = time.perf_counter()
        kernels.fit_values(requests)
        fits[side] = (
            [torch.cat([p.detach().cpu().flatten() for p in a.vf.parameters()]) for a, _ in setups],
            time.perf_counter() - t0,
        )
    dv = max(float((a - b).abs().max()) for a, b in zip(fits["exact"][0], fits["device"][0]))
    failed += [] if dv <= vf_tol else ["value fit"]
    print(
        f"[device_check] batched value fit, S={n_seeds} (310 Adam steps, clip 2.0): max |weight diff| {dv:.2e} "
        f"(tol {vf_tol:g}); {fits['exact'][1] * 1e3 / n_seeds:.1f} ms/seed CPU vs {fits['device'][1] * 1e3 / n_seeds:.1f} on {dev}"
    )
    if stat_seeds:
        budget = ["slbo.n_stages=2", "slbo.n_iters=1", "rollout.n_train_samples=2000", "rollout.n_test_samples=2000"]
        if smoke:
            budget = ["slbo.n_stages=2", "slbo.n_iters=1", "slbo.n_model_iters=5", "slbo.n_policy_iters=2"]
            budget += ["rollout.n_train_samples=400", "rollout.n_test_samples=2000"]
        seeds = list(range(1, stat_seeds + 1))
        procs = {}
        for d in ("cpu", "device"):  # the exact CPU batch, and the device path on ``dev``
            root = os.path.join(work, "slbo_stat", d.replace(":", "_"))
            dirs = [os.path.join(root, f"seed{s}") for s in seeds]
            cmd = [sys.executable, "-m", "vaml_ext.slbo.batched.run", "variant=ma_l1", "env=pendulum", "setting=paper"]
            cmd += [f"seeds={','.join(map(str, seeds))}", f"log_dirs={','.join(dirs)}", "ckpt.resume=false", *budget]
            env = dict(os.environ)
            if d == "cpu":
                env.pop("VAML_SLBO_DEVICE_ROLLOUT", None)
            else:
                cmd.append(f"device={dev}")
                env["VAML_SLBO_DEVICE_ROLLOUT"] = "1"  # (on a GPU the default; on the CPU it asks for the device path)
            procs[d] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env), dirs)
        finals = {}
        for d, (proc, dirs) in procs.items():
            out = proc.communicate()[0].decode(errors="replace")
            if proc.returncode != 0:
                print(f"[device_check] FAIL: the {d} batch failed:\n{out[-3000:]}")
                return 1
            rows = [list(csv.DictReader(open(os.path.join(x, "progress.csv")))) for x in dirs]
            finals[d] = np.array([float(r[-1]["real_return_mean"]) for r in rows])
        a, b = finals["cpu"], finals["device"]
        diff = b - a
        rng = np.random.default_rng(0)
        boots = [rng.choice(diff, diff.size).mean() for _ in range(2000)]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(
            f"[device_check] SLBO ma_l1, MBBL Pendulum, {stat_seeds} seeds, {' '.join(budget)}: final real return "
            f"mean {a.mean():.1f} (sd {a.std(ddof=1) if a.size > 1 else 0:.1f}) on the CPU (exact) vs {b.mean():.1f} "
            f"(sd {b.std(ddof=1) if b.size > 1 else 0:.1f}) batched on {dev}; paired difference {diff.mean():+.1f} "
            f"[{lo:+.1f}, {hi:+.1f}] (bootstrap 95 % CI): "
            + ("no difference detected at this many seeds" if lo <= 0 <= hi else "the device path's returns differ")
        )
    if failed:
        print(f"[device_check] FAIL (SLBO batch): {', '.join(failed)} outside tolerance")
        return 1
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
    ap.add_argument("part", choices=["mbpo", "slbo", "mbpo-concurrency", "slbo-batch"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=500, help="MBPO env steps")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets: plumbing only")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4, 8], help="mbpo-concurrency: runs at once")
    ap.add_argument("--methods", nargs="+", default=["mle", "ma_l1"], help="mbpo-concurrency: model losses")
    ap.add_argument("--env", default="mbpo_hopper", help="mbpo-concurrency: the override config")
    ap.add_argument("--seeds", type=int, default=8, help="slbo-batch: seeds per lockstep batch")
    ap.add_argument("--stat-seeds", type=int, default=8, help="slbo-batch: seeds of the run comparison (0: skip)")
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
    if a.part == "slbo-batch":
        return check_slbo_batch(dev, a.smoke, a.work, a.seeds, a.stat_seeds)
    return check_slbo(dev, a.smoke, a.work)


if __name__ == "__main__":
    sys.exit(main())
