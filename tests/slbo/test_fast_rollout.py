"""The virtual runner's fused rollout (``VirtualEnv.fast_rollout`` + ``Runner._run_fast``)
against the generic loop of ``Runner.run``: same records, episodes and generator state.

The end-to-end check (a whole short SLBO run reproducing the numbers stored before the
speed-up) is ``test_same_numbers.py``; this one isolates the rollout, with a model and
normalisers far from their initial values so that episodes end (Hopper) and every op
matters, and checks where the fused path must step aside.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slbo.dynamics_model import DynamicsModel
from slbo.envs.virtual_env import VirtualEnv
from slbo.partial_envs import make_env
from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
from slbo.utils.multi_layer_perceptron import bind_layers, run_layers
from slbo.utils.normalizer import Normalizers
from slbo.utils.runner import Runner


def _setup(env_id):
    env = make_env(env_id)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(1)
    norms = Normalizers(da, ds)
    with torch.no_grad():
        norms.state.op_mean.normal_(0, 0.1)
        norms.state.op_std.uniform_(0.5, 2)
        norms.diff.op_std.uniform_(0.01, 0.1)
        model = DynamicsModel(ds, da, norms, [64, 64])
        for p in model.parameters():
            p.normal_(0, 0.1)
        policy = GaussianMLPPolicy(ds, da, [32, 32], norms.state)
        policy.op_log_std.fill_(-0.5)
    return env_id, model, policy


def _rollout(setup, fast, n_samples=800, max_steps=40, runs=2):
    env_id, model, policy = setup
    venv = VirtualEnv(model, make_env(env_id), 8)
    venv._env.reset(seed=5)
    calls = []
    if fast:
        inner = venv.fast_rollout

        def spy(*args):
            out = inner(*args)
            calls.append(out is not None)
            return out

        venv.fast_rollout = spy
    else:
        venv.fast_rollout = None
    runner = Runner(venv, max_steps=max_steps)
    np.random.seed(11)
    datasets, episodes = [], []
    for _ in range(runs):  # the second run continues the first one's episodes
        data, ep = runner.run(policy, n_samples)
        datasets.append(data.data.copy())
        episodes.append([e["return"] for e in ep])
    rng = np.random.get_state()
    return datasets, episodes, (rng[1].copy(), rng[2], rng[3], rng[4]), runner, calls


@pytest.mark.parametrize("env_id", ["Hopper-v2", "Swimmer-v2"])
def test_fused_rollout_reproduces_the_generic_loop(env_id):
    setup = _setup(env_id)
    d0, e0, rng0, r0, _ = _rollout(setup, fast=False)
    d1, e1, rng1, r1, calls = _rollout(setup, fast=True)
    assert calls == [True, True]  # the fused path ran both times
    for a, b in zip(d0, d1):
        for name in a.dtype.names:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert e0 == e1 and sum(map(len, e0)) > 0  # episodes ended (timeouts at least) and match
    np.testing.assert_array_equal(rng0[0], rng1[0])
    assert rng0[1:] == rng1[1:]  # same position and cached Gaussian in NumPy's generator
    np.testing.assert_array_equal(r0.get_state(), r1.get_state())
    np.testing.assert_array_equal(r0._n_steps, r1._n_steps)
    np.testing.assert_array_equal(r0._returns, r1._returns)


def test_hopper_episodes_terminate_in_the_fused_path():
    setup = _setup("Hopper-v2")
    d, _, _, _, calls = _rollout(setup, fast=True, runs=1)
    assert calls == [True] and d[0]["done"].any()  # resets after unhealthy states are exercised


def test_bound_layers_match_run_layers_and_leave_the_input_alone():
    _, model, policy = _setup("Hopper-v2")
    for net in (policy.net, model.net):
        x = torch.randn(8, net[0].in_features)
        x0 = x.clone()
        with torch.inference_mode():
            out = bind_layers(net)(x)
            ref = run_layers(net, x0.clone())
        assert torch.equal(out, ref) and torch.equal(x, x0)
    with pytest.raises(TypeError, match="Tanh"):  # an activation first would act on the caller's input
        bind_layers(torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(3, 3)))
    with pytest.raises(TypeError, match="Sigmoid"):
        bind_layers(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sigmoid()))


def test_fused_rollout_steps_aside():
    env_id, model, policy = _setup("Hopper-v2")
    venv = VirtualEnv(model, make_env(env_id), 8)
    states = venv.reset()
    assert venv.fast_rollout(policy, 5, states) is not None
    assert venv.fast_rollout(policy, 5, states + 1.0) is None  # runner's states are not the env's
    assert venv.fast_rollout(object(), 5, states) is None  # another policy class
    opt = VirtualEnv(model, make_env(env_id), 8, opt_model=True)
    assert opt.fast_rollout(policy, 5, opt.reset()) is None


def test_hopper_health_check_matches_v5_ranges():
    env = make_env("Hopper-v2")
    (min_state, max_state), (min_z, max_z) = env._healthy_state_range, env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    rng = np.random.default_rng(0)
    for scale in (0.1, 0.3, 1.0, 150.0):
        s = rng.normal(0, scale, (20000, 12))
        s[:, 1] += 1.0
        for value in (np.nan, np.inf, -np.inf, min_state, max_state, min_z, min_angle, max_angle):
            s[rng.random(s.shape) < 0.005] = value
        expected = (
            np.all((min_state < s[:, 2:]) & (s[:, 2:] < max_state), axis=-1)
            & (min_z < s[:, 1])
            & (s[:, 1] < max_z)
            & (min_angle < s[:, 2])
            & (s[:, 2] < max_angle)
        )
        np.testing.assert_array_equal(env._healthy(s), expected)
