"""Per-seed cost of the seed-batched kernels against the port one seed at a time, side by
side in one run (issue 27): the value fit (``TRPO.train_vf``, 5 epochs of minibatch 64,
clip 2.0 as ``setting=paper``) and a virtual rollout (``Runner.run`` on the model), for
S seeds at once.

    python exp/slbo/bench_batched.py                       # MBBL Pendulum and Hopper, S = 1 4 8 16
    python exp/slbo/bench_batched.py --envs pendulum --seeds 1 8 --repeats 5

Sizes are the paper setting's (``vaml_ext.slbo.settings``): Pendulum 20 virtual envs x 200
steps, Hopper 4 x 1000; value net 64-64 tanh, policy 32-32 tanh, model 500-500 ReLU. Each
repeat times the port on S seeds one after another, then the batched kernel on the same S
seeds (fresh copies of the same state), alternating so machine load hits both alike; one
torch thread. Prints milliseconds per seed (median over repeats) and the ratio port /
batched; every batched result is first checked bit-identical to the port's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENVS = {"pendulum": ("MBBLPendulum-v0", 20, 200), "hopper": ("Hopper-v2", 4, 1000)}


def _vf_setup(seed: int, dim_state: int, n: int):
    """``bench_value_fit.py``'s value fit (its networks and data), with the paper setting's clip."""
    from bench_value_fit import _setup  # this directory (the script's) is on sys.path

    from vaml_ext.slbo.value_fit import clip_value_fit

    algo, data = _setup(dim_state, n, seed)
    clip_value_fit(algo, 2.0)
    return algo, data


def _rollout_setup(seed: int, env_id: str, n_envs: int, max_steps: int):
    import torch

    from slbo.dynamics_model import DynamicsModel
    from slbo.envs.virtual_env import VirtualEnv
    from slbo.partial_envs import make_env
    from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
    from slbo.utils.normalizer import Normalizers
    from slbo.utils.runner import Runner

    env = make_env(env_id)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(seed)
    norms = Normalizers(da, ds)
    with torch.no_grad():
        norms.diff.op_std.uniform_(0.01, 0.1)
        model = DynamicsModel(ds, da, norms, [500, 500])
        for p in model.parameters():
            p.normal_(0, 0.05)
        policy = GaussianMLPPolicy(ds, da, [32, 32], norms.state)
    venv = VirtualEnv(model, make_env(env_id), n_envs)
    venv._env.reset(seed=seed)
    return Runner(venv, max_steps=max_steps), policy


def _time_vf(n_seeds: int, dim_state: int, n: int, batched: bool, check=None) -> float:
    import numpy as np
    import torch

    from vaml_ext.slbo.batched import kernels

    setups = [_vf_setup(s, dim_state, n) for s in range(n_seeds)]
    t0 = time.perf_counter()
    if batched:
        requests = []
        for s, (algo, data) in enumerate(setups):
            np.random.seed(s)
            requests.append(kernels.vf_request(algo, data))
        kernels.fit_values(requests)
    else:
        for s, (algo, data) in enumerate(setups):
            np.random.seed(s)
            algo.train_vf(data)
    dt = time.perf_counter() - t0
    if check is not None:
        check.append([torch.cat([p.detach().flatten() for p in a.vf.parameters()]) for a, _ in setups])
    return dt / n_seeds


def _time_rollout(n_seeds: int, env: str, batched: bool, check=None) -> float:
    import numpy as np

    from vaml_ext.slbo.batched import kernels

    env_id, n_envs, steps = ENVS[env]
    setups = [_rollout_setup(s, env_id, n_envs, steps) for s in range(n_seeds)]
    n_samples = n_envs * steps
    t0 = time.perf_counter()
    if batched:
        requests = []
        for s, (runner, policy) in enumerate(setups):
            np.random.seed(s)
            requests.append(kernels.rollout_request(runner, policy, n_samples))
        kernels.rollout(requests)
        out = [r.result[0].data for r in requests]
    else:
        out = []
        for s, (runner, policy) in enumerate(setups):
            np.random.seed(s)
            out.append(runner.run(policy, n_samples)[0].data)
    dt = time.perf_counter() - t0
    if check is not None:
        check.append(out)
    return dt / n_seeds


def _same(a, b) -> bool:
    import numpy as np
    import torch

    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif any(not np.array_equal(x[k], y[k]) for k in x.dtype.names):
            return False
    return True


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 4, 8, 16], help="batch sizes S")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_value_fit's setup
    from vaml_ext.runlog import numerics

    numerics.pin()
    from vaml_ext.slbo.run import patched_tree

    sys.path.insert(0, str(patched_tree()))
    import torch

    from vaml_ext.slbo.mbbl_envs import register

    register()
    torch.set_num_threads(1)
    rows = []
    for env in args.envs:
        env_id, n_envs, steps = ENVS[env]
        dim_state = 3 if env == "pendulum" else 11
        n = n_envs * steps
        for kind in ("value fit", "rollout"):
            for n_seeds in args.seeds:
                port, batched = [], []
                for _ in range(args.repeats):
                    check: list = []
                    if kind == "value fit":
                        port.append(_time_vf(n_seeds, dim_state, n, False, check))
                        batched.append(_time_vf(n_seeds, dim_state, n, True, check))
                    else:
                        port.append(_time_rollout(n_seeds, env, False, check))
                        batched.append(_time_rollout(n_seeds, env, True, check))
                    if not _same(*check):
                        raise SystemExit(f"{env} {kind} S={n_seeds}: batched numbers differ from the port's")
                mp, mb = statistics.median(port), statistics.median(batched)
                rows.append((env, kind, n_seeds, mp * 1e3, mb * 1e3, mp / mb))
                print(
                    f"[bench] {env} {kind} S={n_seeds}: port {mp * 1e3:.1f} ms/seed, batched {mb * 1e3:.1f}", flush=True
                )
    print(f"\nms per seed (median of {args.repeats} alternating repeats), one thread; batched == port bit for bit")
    print("| env | kernel | S | port | batched | port / batched |")
    print("|---|---|---|---|---|---|")
    for env, kind, s, a, b, r in rows:
        print(f"| {env} | {kind} | {s} | {a:.1f} | {b:.1f} | {r:.2f}x |")


if __name__ == "__main__":
    main()
