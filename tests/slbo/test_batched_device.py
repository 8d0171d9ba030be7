"""The device path of the seed-batched runner (``vaml_ext/slbo/batched/device.py``, issue 27
part 4), run here on the CPU: relaxed lockstep against the exact kernel (which equals the
port, ``test_batched.py``), the torch ``mb_step`` against the NumPy one, and the resets
drawn ahead from each seed's own env generator -- left where the port leaves it.

Tolerances: the device path runs every layer as ``baddbmm`` (the exact kernel loops over
seeds on matrix-vector shapes) and the reward in torch, so float32 states may differ by a
few ulps per step; over 50 steps of the test models that stays below 1e-5 (measured:
<= 6e-7), and rewards (float64 from those states) below 1e-4. On a GPU the same comparison
runs in ``exp/device_check.py slbo-batch``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slbo.partial_envs import make_env
from vaml_ext.slbo.batched import device, kernels

from .test_batched import _rollout_seed, _runner_snapshot

STATE_ATOL, REWARD_ATOL = 1e-5, 1e-4


@pytest.fixture(autouse=True, scope="module")
def _mbbl():
    from vaml_ext.slbo.mbbl_envs import register

    register()


def _both(env_id, n_envs, max_steps, seeds, rounds=2, n_steps=50, prepare=None):
    """The same seeds through the exact kernel and through the device path, ``rounds``
    rollouts in a row; returns both sides' results and runners."""
    sides = {}
    for path in (False, True):
        setups = [_rollout_seed(s, env_id, n_envs, max_steps) for s in seeds]
        if prepare is not None:
            for runner, _ in setups:
                prepare(runner)
        results = []
        for k in range(rounds):
            requests = []
            for s, (runner, policy) in zip(seeds, setups):
                np.random.seed(1000 * k + s)
                requests.append(kernels.rollout_request(runner, policy, n_envs * n_steps, device_path=path))
            assert all(r is not None and r.device_path is path for r in requests)
            kernels.rollout(requests)
            results.append([r.result for r in requests])
        sides[path] = (results, [r for r, _ in setups])
    return sides


def _assert_lockstep(sides):
    (exact, exact_runners), (dev, dev_runners) = sides[False], sides[True]
    n_ended = 0
    for round_exact, round_dev in zip(exact, dev):
        for (da, ea), (db, eb) in zip(round_exact, round_dev):
            a, b = da.data, db.data
            for name in ("state", "next_state", "action"):
                np.testing.assert_allclose(b[name], a[name], rtol=0, atol=STATE_ATOL, err_msg=name)
            np.testing.assert_allclose(b["reward"], a["reward"], rtol=0, atol=REWARD_ATOL)
            for name in ("done", "timeout"):
                np.testing.assert_array_equal(b[name], a[name], err_msg=name)
            assert len(ea) == len(eb)
            np.testing.assert_allclose([e["return"] for e in eb], [e["return"] for e in ea], rtol=0, atol=1e-3)
            n_ended += len(ea)
    for ra, rb in zip(exact_runners, dev_runners):
        sa, sb = _runner_snapshot(ra), _runner_snapshot(rb)
        np.testing.assert_allclose(sb[0], sa[0], rtol=0, atol=STATE_ATOL)
        np.testing.assert_array_equal(sb[1], sa[1])  # episode step counters
        np.testing.assert_allclose(sb[2], sa[2], rtol=0, atol=1e-3)  # running returns
        # the env's own reset generator: drawn from exactly as often as the port draws
        assert str(rb.env._env.np_random.bit_generator.state) == str(ra.env._env.np_random.bit_generator.state)
    return n_ended


@pytest.mark.parametrize(
    "env_id,n_envs,max_steps",
    [("MBBLPendulum-v0", 20, 30), ("Hopper-v2", 4, 40), ("Pendulum-v1", 8, 25), ("MBBLAcrobot-v0", 6, 20)],
)
def test_device_path_keeps_lockstep_with_the_exact_kernel(env_id, n_envs, max_steps):
    """MBBLAcrobot has no torch ``mb_step``: its NumPy one runs on the host each step."""
    assert (device.torch_mb_step(make_env(env_id), "cpu") is None) == (env_id == "MBBLAcrobot-v0")
    assert _assert_lockstep(_both(env_id, n_envs, max_steps, [7, 8, 9])) > 0


def test_a_pool_that_runs_out_is_drawn_again_large_enough():
    """A model whose every step ends Hopper's episode: 4 envs x 50 steps = 200 resets per
    rollout, far beyond the first pool (4); the rollout is redone with a pool that cannot
    run out, and matches the exact kernel, the env generator included."""

    def falls(runner):
        with torch.no_grad():
            runner.env._model.net[-1].bias[1] = -1e4  # z' far below Hopper's healthy range

    sides = _both("Hopper-v2", 4, 1000, [3, 4], rounds=2, prepare=falls)
    assert _assert_lockstep(sides) == 2 * 2 * 4 * 50
    assert all(r._vaml_resets_last == 200 for r in sides[True][1])


@pytest.mark.parametrize(
    "env_id", ["MBBLPendulum-v0", "Pendulum-v1", "Hopper-v2", "Walker2D-v2", "Swimmer-v2", "HalfCheetah-v2"]
)
def test_torch_mb_step_is_the_ports_formula(env_id):
    env = make_env(env_id)
    rng = np.random.default_rng(0)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    s, s2 = rng.normal(0, 1, (2, 3, 50, ds))
    s2[..., 1] = rng.uniform(0, 2.5, (3, 50))  # Hopper/Walker heights around their healthy ranges
    a = rng.uniform(-3, 3, (3, 50, da))
    step = device.torch_mb_step(env, "cpu")
    r, d = step(*(torch.from_numpy(x) for x in (s, a, s2)))
    for i in range(3):
        ref_r, ref_d = env.mb_step(s[i], a[i], s2[i])
        np.testing.assert_allclose(r[i].numpy(), ref_r, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(d[i].numpy(), np.asarray(ref_d).astype(bool))
    assert 0 < d.sum() < d.numel() or env_id in ("MBBLPendulum-v0", "Pendulum-v1", "Swimmer-v2", "HalfCheetah-v2")


def test_an_env_whose_reset_is_not_a_function_of_its_generator_is_refused():
    env = make_env("MBBLPendulum-v0")
    env.reset(seed=1)
    pool = device._draw_pool(env, 3)
    before = str(env.np_random.bit_generator.state)
    device._replay_resets(env, pool, 2)  # the same states again: accepted
    assert str(env.np_random.bit_generator.state) != before
    env.np_random = np.random.default_rng(99)  # another generator: the replay differs
    with pytest.raises(RuntimeError, match="depend on more than"):
        device._replay_resets(env, pool, 2)


def test_device_check_runs_the_lockstep_on_the_cpu(tmp_path):
    """``exp/device_check.py slbo-batch`` (what a GPU machine runs) passes on the CPU, where
    its device side is the device path on the CPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "exp/device_check.py", "slbo-batch", "--device", "cpu", "--smoke"]
        + ["--seeds", "2", "--stat-seeds", "0", "--work", str(tmp_path)],
        cwd=repo,
        env=dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("same episode ends True") == 2 and "batched value fit, S=2" in out.stdout
