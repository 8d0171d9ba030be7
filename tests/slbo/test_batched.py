"""The seed-batched kernels (``vaml_ext.slbo.batched.kernels``) against the port run one
seed at a time: the same numbers bit for bit, per seed, and the same generator states.

Each seed gets its own networks, normalisers, Adam state and data (far from their initial
values so every op matters); the reference is the port's own ``TRPO.train_vf`` /
``Runner.run`` on a deep copy, seed after seed, in that seed's NumPy state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slbo.algos.TRPO import TRPO
from slbo.dynamics_model import DynamicsModel
from slbo.envs.virtual_env import VirtualEnv
from slbo.partial_envs import make_env
from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
from slbo.utils.dataset import Dataset
from slbo.utils.normalizer import Normalizers
from slbo.utils.runner import Runner
from slbo.v_function.mlp_v_function import MLPVFunction
from vaml_ext.slbo.batched import kernels
from vaml_ext.slbo.value_fit import clip_value_fit


def _np_state():
    s = np.random.get_state()
    return s[1].copy(), s[2], s[3], s[4]


def _same_np_state(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


# --------------------------------------------------------------------------------------
# value fit
# --------------------------------------------------------------------------------------
def _vf_seed(seed: int, dim_state: int, n: int, clip: float | None, warm_steps: int):
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    norms = Normalizers(1, dim_state)
    norms.state.update(rng.randn(500, dim_state) * 3 + 1)
    vfn = MLPVFunction(dim_state, [64, 64], norms.state)
    policy = GaussianMLPPolicy(dim_state, 1, [32, 32], norms.state)
    algo = TRPO(dim_state, 1, policy, vfn, max_kl=0.01, n_cg_iters=10, cg_damping=0.1, vf_lr=1e-3, n_vf_iters=3)
    if clip is not None:
        clip_value_fit(algo, clip)
    data = Dataset.fromarrays(
        [rng.randn(n, dim_state) * 2, rng.randn(n) * 50], dtype=[("state", ("f8", dim_state)), ("return_", "f8")]
    )
    np.random.seed(seed)
    for _ in range(warm_steps):  # a non-trivial Adam state (and step count) first
        algo.train_vf(data)
    return algo, data


def _vf_snapshot(algo):
    opt = algo.vf_optimizer
    params = list(algo.vf.parameters())
    out = [p.detach().clone() for p in params] + [p.grad.clone() for p in params]
    for p in params:
        st = opt.state[p]
        out += [st["exp_avg"].clone(), st["exp_avg_sq"].clone(), st["step"].clone()]
    return out


@pytest.mark.parametrize("clip", [None, 2.0])
@pytest.mark.parametrize("dim_state", [3, 11])
def test_batched_value_fit_equals_the_port_per_seed(clip, dim_state):
    seeds, n = [7, 8, 9], 700  # 700: an incomplete last minibatch is dropped
    setups = [_vf_seed(s, dim_state, n, clip, warm_steps=1) for s in seeds]
    refs = []
    for s in seeds:  # the same construction again (a deep copy would drop the optimiser's clip hook)
        algo, data = _vf_seed(s, dim_state, n, clip, warm_steps=1)
        np.random.seed(100 + s)
        loss = algo.train_vf(data)
        refs.append((_vf_snapshot(algo), loss, _np_state()))
    requests, states = [], []
    for s, (algo, data) in zip(seeds, setups):
        np.random.seed(100 + s)
        requests.append(kernels.vf_request(algo, data))
        states.append(_np_state())
    assert all(r is not None for r in requests)
    kernels.fit_values(requests)
    for (algo, _), (ref, ref_loss, ref_np), np_state, request in zip(setups, refs, states, requests):
        got = _vf_snapshot(algo)
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            assert torch.equal(a, b)
        assert request.loss == ref_loss  # the loss train_vf returns, computed batched
        _same_np_state(np_state, ref_np)  # the shuffles drawn as train_vf draws them


def test_value_fit_groups_seeds_by_adam_step_count():
    """Seeds whose optimisers are at different steps (bias corrections differ) are fitted
    in separate groups, each still exact."""
    setups = [_vf_seed(1, 3, 320, 2.0, warm_steps=1), _vf_seed(2, 3, 320, 2.0, warm_steps=2)]
    refs = []
    for algo, data in (_vf_seed(1, 3, 320, 2.0, warm_steps=1), _vf_seed(2, 3, 320, 2.0, warm_steps=2)):
        np.random.seed(5)
        algo.train_vf(data)
        refs.append(_vf_snapshot(algo))
    requests = []
    for algo, data in setups:
        np.random.seed(5)
        requests.append(kernels.vf_request(algo, data))
    assert requests[0].key() != requests[1].key()
    kernels.fit_values(requests)
    for (algo, _), ref in zip(setups, refs):
        assert all(torch.equal(a, b) for a, b in zip(_vf_snapshot(algo), ref))


def test_value_fit_request_steps_aside_where_the_port_takes_autograd():
    algo, data = _vf_seed(1, 3, 128, None, warm_steps=0)
    algo.vf_optimizer.register_step_pre_hook(lambda *a: None)  # any other hook: autograd path
    assert kernels.vf_request(algo, data) is None


# --------------------------------------------------------------------------------------
# virtual rollouts
# --------------------------------------------------------------------------------------
def _rollout_seed(seed: int, env_id: str, n_envs: int, max_steps: int, hidden=(64, 64)):
    env = make_env(env_id)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(seed)
    norms = Normalizers(da, ds)
    with torch.no_grad():
        norms.state.op_mean.normal_(0, 0.1)
        norms.state.op_std.uniform_(0.5, 2)
        norms.diff.op_std.uniform_(0.01, 0.1)
        model = DynamicsModel(ds, da, norms, list(hidden))
        for p in model.parameters():
            p.normal_(0, 0.1)
        policy = GaussianMLPPolicy(ds, da, [32, 32], norms.state)
        for p in policy.net.parameters():
            p.normal_(0, 0.3)
        policy.op_log_std.fill_(-0.5)
    venv = VirtualEnv(model, make_env(env_id), n_envs)
    venv._env.reset(seed=seed)
    runner = Runner(venv, max_steps=max_steps)
    return runner, policy


def _runner_snapshot(runner):
    return runner._states.copy(), runner._n_steps.copy(), runner._returns.copy(), runner.env._states.copy()


@pytest.mark.parametrize(
    "env_id,n_envs,max_steps", [("MBBLPendulum-v0", 20, 30), ("Hopper-v2", 4, 40), ("Pendulum-v1", 8, 25)]
)
def test_batched_rollout_equals_the_port_per_seed(env_id, n_envs, max_steps):
    from vaml_ext.slbo.mbbl_envs import register

    register()
    seeds, n_samples = [7, 8, 9], n_envs * 50  # 50 steps: episodes end mid-run (timeouts; Hopper: falls)
    setups = [_rollout_seed(s, env_id, n_envs, max_steps) for s in seeds]
    refs = []
    for s in seeds:  # the same construction again: the reference
        runner, policy = _rollout_seed(s, env_id, n_envs, max_steps)
        np.random.seed(200 + s)
        out = []
        for _ in range(2):  # the second run continues the first one's episodes
            data, ep = runner.run(policy, n_samples)
            out.append((data.data.copy(), [e["return"] for e in ep]))
        refs.append((out, _runner_snapshot(runner), runner.env._env.np_random.bit_generator.state, _np_state()))
    got = [[] for _ in seeds]
    np_states = [None] * len(seeds)
    for _ in range(2):
        requests = []
        for i, (s, (runner, policy)) in enumerate(zip(seeds, setups)):
            if np_states[i] is None:
                np.random.seed(200 + s)
            else:
                np.random.set_state(np_states[i][0])
            requests.append(kernels.rollout_request(runner, policy, n_samples))
            st = np.random.get_state()
            np_states[i] = (st, _np_state())
        assert all(r is not None for r in requests)
        kernels.rollout(requests)
        for i, r in enumerate(requests):
            data, ep = r.result
            got[i].append((data.data.copy(), [e["return"] for e in ep]))
    n_ended = 0
    for i, ((runner, _), (ref_out, ref_runner, ref_env, ref_np)) in enumerate(zip(setups, refs)):
        for (a, ea), (b, eb) in zip(got[i], ref_out):
            for name in a.dtype.names:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
            assert ea == eb
            n_ended += len(ea)
        for a, b in zip(_runner_snapshot(runner), ref_runner):
            np.testing.assert_array_equal(a, b)
        _same_np_state(np_states[i][1], ref_np)
        assert str(runner.env._env.np_random.bit_generator.state) == str(ref_env)  # the env's own reset generator
    assert n_ended > 0


def test_rollout_request_steps_aside_where_the_port_does():
    runner, policy = _rollout_seed(1, "Hopper-v2", 4, 10)
    assert kernels.rollout_request(runner, object(), 40) is None
    runner._states = runner._states + 1.0  # the runner's states are not the env's
    assert kernels.rollout_request(runner, policy, 40) is None
    real = Runner(
        __import__("slbo.envs.batched_env", fromlist=["BatchedEnv"]).BatchedEnv([make_env("Hopper-v2")]), max_steps=10
    )
    assert kernels.rollout_request(real, policy, 10) is None  # a real env


def test_bmm_probe_falls_back_on_matrix_vector_shapes():
    """Wherever the probe says no, the per-seed loop is what runs, and it is exact."""
    x, w, b = torch.randn(3, 64, 64), torch.randn(3, 1, 64), torch.randn(3, 1)
    out = kernels.linear(x, w, b)
    for s in range(3):
        assert torch.equal(out[s], torch.nn.functional.linear(x[s], w[s], b[s]))


# --------------------------------------------------------------------------------------
# the scheduler (one baton, globals per seed)
# --------------------------------------------------------------------------------------
def _seed_fn(seed: int, fail_at: int | None = None):
    """A stand-in for the port's stage loop: seeds the global generators as FLAGS.set_seed
    does, draws from them between requests, and submits 4 requests."""
    from vaml_ext.slbo.batched import scheduler

    def fn():
        from slbo.utils.flags import FLAGS

        np.random.seed(seed)
        torch.manual_seed(seed)
        out = []
        for i in range(4):
            assert FLAGS.seed == seed and FLAGS.log_dir == f"/tmp/x{seed}"  # this seed's flags swapped in
            out.append((float(np.random.rand()), float(torch.rand(1))))
            if fail_at == i:
                raise FloatingPointError(f"seed {seed}: NaN")
            box = {"seed": seed, "i": i}
            scheduler.current().submit("echo" if i % 2 == 0 else "other", box)
            out.append(box["served"])
        return out

    return fn


def test_scheduler_gives_each_seed_its_own_generators_and_serves_by_kind():
    from vaml_ext.slbo.batched.scheduler import SeedScheduler

    rounds = []

    def echo(payloads):
        rounds.append(("echo", [p["seed"] for p in payloads]))
        for p in payloads:
            np.random.rand(), torch.rand(1)  # the executor's own draws must not leak into a seed's
            p["served"] = ("echo", p["i"])

    def other(payloads):
        rounds.append(("other", [p["seed"] for p in payloads]))
        for p in payloads:
            p["served"] = ("other", p["i"])

    seeds = [3, 5, 9]
    flags = [{"seed": s, "log_dir": f"/tmp/x{s}", "commit": None} for s in seeds]
    sched = SeedScheduler(seeds, [_seed_fn(s) for s in seeds], flags, {"echo": echo, "other": other})
    results = sched.run()
    for s, (result, error) in zip(seeds, results):
        assert error is None
        assert result == _alone(s)  # as if the seed had the process to itself
    assert rounds == [("echo", seeds), ("other", seeds), ("echo", seeds), ("other", seeds)]  # one batch per round
    assert sched.served == {"echo": 6, "other": 6}


def _alone(seed: int):
    """What the stand-in returns for ``seed`` with nothing else in the process."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    out = []
    for i in range(4):
        out.append((float(np.random.rand()), float(torch.rand(1))))
        out.append(("echo" if i % 2 == 0 else "other", i))
    return out


def test_scheduler_retires_a_failing_seed_and_the_others_finish():
    from vaml_ext.slbo.batched.scheduler import SeedScheduler

    def serve(payloads):
        for p in payloads:
            p["served"] = ("echo" if p["i"] % 2 == 0 else "other", p["i"])

    seeds = [3, 5, 9]
    flags = [{"seed": s, "log_dir": f"/tmp/x{s}", "commit": None} for s in seeds]
    fns = [_seed_fn(3), _seed_fn(5, fail_at=2), _seed_fn(9)]
    results = SeedScheduler(seeds, fns, flags, {"echo": serve, "other": serve}).run()
    assert results[0] == (_alone(3), None) and results[2] == (_alone(9), None)
    assert results[1][0] is None and isinstance(results[1][1], FloatingPointError)


def test_scheduler_says_when_a_seed_is_alone():
    """Once the other seeds have finished (or failed), a seed is alone: the batching points
    then call the port's own code (``vaml_ext/slbo/batched/run.py``)."""
    from vaml_ext.slbo.batched import scheduler
    from vaml_ext.slbo.batched.scheduler import SeedScheduler

    seen = {}

    def fn(seed, n):
        def run():
            seen[seed] = []
            for _ in range(n):
                seen[seed].append(scheduler.current().alone())
                scheduler.current().submit("x", {})
            seen[seed].append(scheduler.current().alone())

        return run

    seeds = [1, 2]
    flags = [{"seed": s, "log_dir": None, "commit": None} for s in seeds]
    SeedScheduler(seeds, [fn(1, 1), fn(2, 3)], flags, {"x": lambda payloads: None}).run()
    assert seen == {1: [False, False], 2: [False, True, True, True]}  # seed 1 ends in round 2, before seed 2 runs
    assert scheduler.current() is None  # outside a seed thread
