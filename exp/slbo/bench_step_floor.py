"""How far the port's virtual rollout step is above its kernels (issue 14's 4x question).

    python exp/slbo/bench_step_floor.py                      # Hopper and Swimmer, 5 repeats
    python exp/slbo/bench_step_floor.py --envs hopper --repeats 3 --steps 1000

Per virtual time step (``n_envs`` = 8 states, upstream's ``plan.n_envs`` at 4,000 TRPO
samples over 500-step rollouts), process CPU microseconds, one torch thread, three ways
side by side in one run (interleaved, median of ``--repeats``):

* ``runner``  -- ``Runner.run`` on a ``VirtualEnv`` (what SLBO runs: fused policy + model
  step, ``mb_step`` reward/termination, records, episode resets);
* ``fused``   -- the fused step alone (``VirtualEnv.fast_rollout``'s ``step(t)``);
* ``kernels`` -- only the networks' kernels: the six ``addmm`` calls (policy [32, 32],
  model [500, 500], upstream's sizes) into preallocated outputs and their in-place
  activations, issued back to back. No normalisation, noise, casts or env code: a
  floor that a same-numbers implementation (same kernels, same shapes) cannot go below.

* ``ops`` / ``scripted`` -- the fused step's policy and model (normalisation, policy net,
  noise, model net, de-normalisation, float casts) as one loop over the whole rollout on
  torch tensors only, run by Python (``ops``) and as TorchScript (``scripted``,
  ``torch.jit.script``: the same ATen kernels in the same order, run by TorchScript's C++
  interpreter), both asserted to give the sampler + stepper's states bit for bit; no
  ``mb_step``, records or resets, so ``scripted`` is a lower bound on what moving the step
  out of Python without a compiler can reach, and ``ops / scripted`` what the interpreter
  itself saves.

``fused - kernels`` is the per-op overhead left; ``runner - fused`` the bookkeeping and
the env's reward/termination. An iteration holds 20,000 such steps (40 TRPO updates x
4,000 samples / 8 envs), plus Algorithm 2's refit rollouts for ``ma_l1``.
Weights are random (upstream's initialisers): step cost does not depend on their values.

``--iteration`` also runs one real SLBO stage of one iteration (``python -m vaml_ext.slbo.run
variant=ma_l1 env=<env> seed=1 slbo.n_stages=1 slbo.n_iters=1``, upstream's sample sizes,
in this process) with a CPU timer around each component (exclusive times: a refit's
rollouts count as rollouts), which tells how much of an iteration the rollouts are.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
ENV_IDS = {"hopper": "Hopper-v2", "swimmer": "Swimmer-v2"}
N_ENVS, STEPS_PER_ITER = 8, 20_000


def build(env_id: str):
    from slbo.dynamics_model import DynamicsModel
    from slbo.envs.virtual_env import VirtualEnv
    from slbo.partial_envs import make_env
    from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
    from slbo.utils.normalizer import Normalizers

    env = make_env(env_id)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    norms = Normalizers(da, ds)
    model = DynamicsModel(ds, da, norms, [500, 500])
    policy = GaussianMLPPolicy(ds, da, [32, 32], norms.state)
    venv = VirtualEnv(model, make_env(env_id), N_ENVS)
    venv._env.reset(seed=0)
    venv.reset()
    return venv, policy, model, ds, da


def time_runner(venv, policy, steps: int) -> float:
    from slbo.utils.runner import Runner

    runner = Runner(venv, max_steps=500)
    t = time.process_time()
    runner.run(policy, steps * N_ENVS)
    return (time.process_time() - t) / steps


def time_fused(venv, policy, steps: int) -> float:
    step = venv.fast_rollout(policy, steps, venv._states)
    assert step is not None, "the fused path stepped aside"
    with torch.inference_mode():
        t = time.process_time()
        for i in range(steps):
            step(i)
        dt = time.process_time() - t
    venv.reset()
    return dt / steps


def time_kernels(policy, model, ds: int, da: int, steps: int) -> float:
    lin_p = [m for m in policy.net if isinstance(m, torch.nn.Linear)]
    lin_m = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    act_p = [type(m) for m in policy.net if not isinstance(m, torch.nn.Linear)]
    assert act_p == [torch.nn.Tanh] * (len(lin_p) - 1), act_p
    with torch.inference_mode():
        x = torch.randn(N_ENVS, ds)
        xa = torch.randn(N_ENVS, ds + da)
        out_p = [torch.empty(N_ENVS, m.out_features) for m in lin_p]
        out_m = [torch.empty(N_ENVS, m.out_features) for m in lin_m]
        wp = [(m.bias, m.weight.t()) for m in lin_p]
        wm = [(m.bias, m.weight.t()) for m in lin_m]
        last_p, last_m = len(wp) - 1, len(wm) - 1
        t = time.process_time()
        for _ in range(steps):
            h = x
            for j, (b, w) in enumerate(wp):
                h = torch.addmm(b, h, w, out=out_p[j])
                if j < last_p:
                    h.tanh_()
            h = xa
            for j, (b, w) in enumerate(wm):
                h = torch.addmm(b, h, w, out=out_m[j])
                if j < last_m:
                    h.relu_()
        return (time.process_time() - t) / steps


def _rollout_ops(
    states: torch.Tensor,
    noise: torch.Tensor,
    policy_layers: list[tuple[torch.Tensor, torch.Tensor]],
    model_layers: list[tuple[torch.Tensor, torch.Tensor]],
    s_mean: torch.Tensor,
    s_scale: torch.Tensor,
    s_std: torch.Tensor,
    d_mean: torch.Tensor,
    d_std: torch.Tensor,
) -> torch.Tensor:
    """``noise.shape[0]`` steps of the fused step's policy + model from float64 ``states``
    (the ops of ``GaussianMLPPolicy.make_sampler`` and ``DynamicsModel.make_stepper``, in
    their order); returns the float64 states after the last step."""
    last_p, last_m = len(policy_layers) - 1, len(model_layers) - 1
    for t in range(noise.shape[0]):
        s32 = states.float()
        norm = (s32 - s_mean) / s_scale
        h = norm
        for j, (w, b) in enumerate(policy_layers):
            h = F.linear(h, w, b)
            if j < last_p:
                h = torch.tanh_(h)
        actions = h.double() + noise[t]
        x = torch.cat([norm, actions.float().clamp(-1.0, 1.0)], 1)
        for j, (w, b) in enumerate(model_layers):
            x = F.linear(x, w, b)
            if j < last_m:
                x = torch.relu_(x)
        x = x.mul_(d_std).add_(d_mean).add_(s32)
        states = x.sub_(s_mean).div_(s_scale).clamp_(-100.0, 100.0).mul_(s_std).add_(s_mean).double()
    return states


with warnings.catch_warnings():  # torch 2.x marks torch.jit.script deprecated (measured anyway)
    warnings.simplefilter("ignore", DeprecationWarning)
    _scripted_rollout = torch.jit.script(_rollout_ops)


def time_scripted(venv, policy, model, steps: int) -> tuple[float, float]:
    """CPU seconds per step of :func:`_rollout_ops` run by Python and by TorchScript, after
    checking on 50 steps that both give the sampler + stepper's states bit for bit."""
    norm_s, norm_d = model.normalizers.state, model.normalizers.diff
    assert policy.normalizer is norm_s
    consts = (norm_s.op_mean, norm_s.op_std.clamp_min(norm_s.eps), norm_s.op_std, norm_d.op_mean, norm_d.op_std)
    layers = [[(m.weight, m.bias) for m in net if isinstance(m, torch.nn.Linear)] for net in (policy.net, model.net)]
    states = torch.from_numpy(np.array(venv._states))
    with torch.inference_mode():
        state = np.random.get_state()
        sample, model_step = policy.make_sampler(50, N_ENVS), model.make_stepper()
        np.random.set_state(state)  # the sampler's noise, drawn again as it draws it
        noise = np.random.randn(50, N_ENVS, policy.dim_action) * np.exp(policy.op_log_std.detach().double().numpy())
        eager = states
        for t in range(50):
            s32 = eager.float()
            norm = model_step.normalize(s32)
            actions = torch.from_numpy(sample(t, s32, norm)).float()
            eager = model_step(s32, actions, norm).double()
        for run in (_rollout_ops, _scripted_rollout):
            assert torch.equal(run(states, torch.from_numpy(noise), *layers, *consts), eager), run.__name__
        noise = torch.randn(steps, N_ENVS, policy.dim_action, dtype=torch.float64) * 0.3
        _scripted_rollout(states, noise[:20], *layers, *consts)  # TorchScript's profiling runs
        per_step = []
        for run in (_rollout_ops, _scripted_rollout):
            t = time.process_time()
            run(states, noise, *layers, *consts)
            per_step.append((time.process_time() - t) / steps)
        return per_step[0], per_step[1]


COMPONENTS = (  # (module, class, method, label); label None: the rollouts, split by env type
    ("slbo.utils.runner", "Runner", "run", None),
    ("slbo.utils.runner", "Runner", "compute_advantage", "advantages (GAE, value forward)"),
    ("slbo.algos.TRPO", "TRPO", "train_vf", "value fits"),
    ("slbo.algos.TRPO", "TRPO", "train", "TRPO steps (CG, line search)"),
    ("slbo.loss.multi_step_loss", "MultiStepLoss", "train_step", "model updates"),
)


def time_iteration(env: str, log_dir: Path) -> None:
    """One ``ma_l1`` stage of one iteration, CPU seconds per component (exclusive)."""
    import importlib

    import vaml_ext.slbo.run as slbo_run

    sys.path.insert(0, str(slbo_run.patched_tree()))
    from slbo.envs.virtual_env import VirtualEnv

    spent, calls, stack = {}, {}, []

    def wrap(owner, name, label):
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            lab = label or ("virtual rollouts" if isinstance(args[0].env, VirtualEnv) else "real rollouts")
            stack.append(0.0)  # the time of timed calls nested in this one
            t = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                dt = time.process_time() - t
                spent[lab] = spent.get(lab, 0.0) + dt - stack.pop()
                calls[lab] = calls.get(lab, 0) + 1
                if stack:
                    stack[-1] += dt

        setattr(owner, name, timed)
        return owner, name, inner

    undo = [wrap(getattr(importlib.import_module(m), c), f, lab) for m, c, f, lab in COMPONENTS]
    t0 = time.process_time()
    try:
        slbo_run.main(
            ["variant=ma_l1", f"env={env}", "seed=1", "slbo.n_stages=1", "slbo.n_iters=1", f"log_dir={log_dir}"]
        )
    finally:
        for owner, name, inner in undo:
            setattr(owner, name, inner)
    total = time.process_time() - t0
    print(f"\none ma_l1 stage of one iteration on {env}, CPU s ({total:.1f} s from the entry point on):")
    print("| component | CPU s | share | calls |\n|---|---|---|---|")
    for lab, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {lab} | {sec:.2f} | {sec / total:.0%} | {calls[lab]} |")
    rest = total - sum(spent.values())
    print(
        f"| everything else (start-up, evaluation bookkeeping, refit's own logic, saving) | {rest:.2f} | {rest / total:.0%} | |"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["hopper", "swimmer"], choices=sorted(ENV_IDS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=2000, help="time steps per measurement")
    p.add_argument("--iteration", action="store_true", help="also time one real ma_l1 iteration per env")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.steps < 10:
        p.error("--repeats >= 1 and --steps >= 10")
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"commit {commit.strip() or '?'}, torch {torch.__version__}, 1 thread, {a.repeats} repeats x {a.steps} steps")
    print(
        "| env | runner us/step | fused us/step | ops us/step | scripted us/step | kernels us/step "
        "| fused / kernels | ops / scripted | scripted / kernels | runner / kernels "
        "| runner s / iteration (20,000 steps) | kernels s / iteration |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in a.envs:
        venv, policy, model, ds, da = build(ENV_IDS[name])
        np.random.seed(0)
        rows = {"runner": [], "fused": [], "ops": [], "scripted": [], "kernels": []}
        for r in range(a.repeats):  # interleaved, so load hits all three alike
            rows["runner"].append(time_runner(venv, policy, a.steps))
            rows["fused"].append(time_fused(venv, policy, a.steps))
            ops, scripted = time_scripted(venv, policy, model, a.steps)
            rows["ops"].append(ops)
            rows["scripted"].append(scripted)
            rows["kernels"].append(time_kernels(policy, model, ds, da, a.steps))
            print(
                f"[bench] {name} repeat {r + 1}/{a.repeats}: "
                + ", ".join(f"{k} {v[-1] * 1e6:.1f} us" for k, v in rows.items()),
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(
            f"| {name} | {med['runner'] * 1e6:.1f} | {med['fused'] * 1e6:.1f} | {med['ops'] * 1e6:.1f} "
            f"| {med['scripted'] * 1e6:.1f} | {med['kernels'] * 1e6:.1f} | {med['fused'] / med['kernels']:.2f} "
            f"| {med['ops'] / med['scripted']:.2f} | {med['scripted'] / med['kernels']:.2f} "
            f"| {med['runner'] / med['kernels']:.2f} "
            f"| {med['runner'] * STEPS_PER_ITER:.2f} | {med['kernels'] * STEPS_PER_ITER:.2f} |",
            flush=True,
        )
    if a.iteration:
        for name in a.envs:
            with tempfile.TemporaryDirectory() as tmp:
                time_iteration(name, Path(tmp) / "run")


if __name__ == "__main__":
    main()
