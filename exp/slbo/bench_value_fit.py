"""Microseconds per value-net Adam step of the SLBO port's value fit (``TRPO.train_vf``),
three paths side by side in one run, alternating so load hits them alike:

* ``fast`` -- the hand-written fit, no clip (upstream's settings);
* ``fast+clip`` -- the hand-written fit applying the authors' global-norm clip
  (``setting=paper``: ``vaml.vf_grad_clip=2.0``), since issue 27;
* ``autograd+clip`` -- what ``setting=paper`` ran before: the clip as an optimiser
  step hook forced the autograd path.

    python exp/slbo/bench_value_fit.py                      # Hopper-sized value net
    python exp/slbo/bench_value_fit.py --dim-state 3 --repeats 9

One torch thread; the value net is the port's ``MLPVFunction`` (hidden 64, 64), the fit
``n_vf_iters`` epochs of minibatch 64 on ``--samples`` states. Prints medians and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _setup(dim_state: int, samples: int, seed: int):
    import torch

    from slbo.algos.TRPO import TRPO
    from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
    from slbo.utils.dataset import Dataset
    from slbo.utils.normalizer import Normalizers
    from slbo.v_function.mlp_v_function import MLPVFunction

    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    norms = Normalizers(1, dim_state)
    norms.state.update(rng.randn(500, dim_state))
    vfn = MLPVFunction(dim_state, [64, 64], norms.state)
    policy = GaussianMLPPolicy(dim_state, 1, [32, 32], norms.state)
    algo = TRPO(dim_state, 1, policy, vfn, max_kl=0.01, n_cg_iters=10, cg_damping=0.1, vf_lr=1e-3, n_vf_iters=5)
    data = Dataset.fromarrays(
        [rng.randn(samples, dim_state), rng.randn(samples) * 50],
        dtype=[("state", ("f8", dim_state)), ("return_", "f8")],
    )
    return algo, data


def _time_fit(path: str, args) -> float:
    """Microseconds per Adam step of one ``train_vf`` call on ``path``."""
    from vaml_ext.slbo.value_fit import GlobalNormClip

    algo, data = _setup(args.dim_state, args.samples, args.seed)
    if path != "fast":
        algo.vf_optimizer.register_step_pre_hook(GlobalNormClip(algo.vf.parameters(), 2.0))
    if path == "autograd+clip":
        algo.vf_optimizer.register_step_pre_hook(lambda *a: None)  # any other hook: the autograd path
    steps = algo.n_vf_iters * (len(data) // 64)
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    algo.train_vf(data)
    return (time.perf_counter() - t0) / steps * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim-state", type=int, default=11, help="11 = Hopper, 3 = MBBL Pendulum")
    p.add_argument("--samples", type=int, default=4000, help="states per fit (the paper's virtual batch: 4 x 1000)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from vaml_ext.runlog import numerics

    numerics.pin()
    import torch

    torch.set_num_threads(1)
    paths = ("fast", "fast+clip", "autograd+clip")
    times: dict = {k: [] for k in paths}
    _time_fit("fast", args)  # warm-up
    for r in range(args.repeats):
        for path in paths if r % 2 == 0 else paths[::-1]:
            times[path].append(_time_fit(path, args))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"value fit, dim_state={args.dim_state}, {args.samples} states, 5 epochs of minibatch 64, "
        f"{args.repeats} alternating repeats, 1 thread; us per Adam step (median [min, max])"
    )
    print("| path | us / step | vs autograd+clip |")
    print("|---|---|---|")
    for k in paths:
        print(
            f"| {k} | {med[k]:.0f} [{min(times[k]):.0f}, {max(times[k]):.0f}] | {med['autograd+clip'] / med[k]:.2f}x |"
        )


if __name__ == "__main__":
    main()
