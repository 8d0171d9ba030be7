"""Distracting observation dimensions (``overrides.distractor_dims``, vaml_ext.mbpo.distractors)."""

import gymnasium as gym
import numpy as np
import pytest

from vaml_ext.mbpo.distractors import DistractorDims


def _rollout(env, seed, steps=60):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    rewards, dones = [], []
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        out.append(obs)
        rewards.append(r)
        dones.append(term or trunc)
        if term or trunc:
            break
    return np.array(out), np.array(rewards), dones


def test_original_columns_rewards_and_termination_are_unchanged():
    base = _rollout(gym.make("Pendulum-v1"), 3)
    wrapped = _rollout(DistractorDims(gym.make("Pendulum-v1"), 5, seed=0), 3)
    assert wrapped[0].shape == (base[0].shape[0], 3 + 5)
    np.testing.assert_array_equal(wrapped[0][:, :3], base[0])
    np.testing.assert_array_equal(wrapped[1], base[1])
    assert wrapped[2] == base[2]
    env = DistractorDims(gym.make("Pendulum-v1"), 5, seed=0)
    assert env.observation_space.shape == (8,) and env.observation_space.contains(wrapped[0][1])


def test_seeded_maps_and_state_reproduce_and_differ_by_seed():
    a = _rollout(DistractorDims(gym.make("Pendulum-v1"), 6, seed=1), 0)[0][:, 3:]
    b = _rollout(DistractorDims(gym.make("Pendulum-v1"), 6, seed=1), 0)[0][:, 3:]
    c = _rollout(DistractorDims(gym.make("Pendulum-v1"), 6, seed=2), 0)[0][:, 3:]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.abs(np.diff(a, axis=0)).mean() > 0.1  # they move: something a model must predict


def test_dynamics_follow_the_authors_update():
    """``y = M x``, ``x ← y + 0.1 sin(P y)``, entries beyond ±20 jump to the reset vector."""
    env = DistractorDims(gym.make("Pendulum-v1"), 4, seed=5)
    env.reset(seed=0)
    for _ in range(30):
        x = env.state.copy()
        y = env.linear_map @ x
        y = y + 0.1 * np.sin(env.sin_params @ y)
        y = np.where(np.abs(y) > 20.0, env.reset_vector, y)
        obs = env.step(env.action_space.sample())[0]
        np.testing.assert_allclose(obs[3:], y.astype(obs.dtype), rtol=1e-6)


def test_pure_noise_is_standard_normal():
    env = DistractorDims(gym.make("Pendulum-v1"), 3, seed=0, pure_noise=True)
    xs = _rollout(env, 0, steps=199)[0][:, 3:]
    assert abs(xs.mean()) < 0.15 and 0.85 < xs.std() < 1.15


class _OldApi(gym.Wrapper):
    """The paper base's env API: reset returns obs, step a 4-tuple."""

    def reset(self, **kw):
        return self.env.reset(**kw)[0]

    def step(self, a):
        obs, r, term, trunc, info = self.env.step(a)
        return obs, r, term or trunc, info


def test_old_api_envs_are_wrapped_too():
    env = DistractorDims(_OldApi(gym.make("Pendulum-v1")), 2, seed=0)
    obs = env.reset(seed=0)
    assert obs.shape == (5,)
    out = env.step(env.action_space.sample())
    assert len(out) == 4 and out[0].shape == (5,)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_dims_fail(bad):
    with pytest.raises(ValueError, match="distractor_dims"):
        DistractorDims(gym.make("Pendulum-v1"), bad)


def test_mbrl_make_env_applies_the_override_and_leaves_envs_alone_without_it():
    import mbrl.util.env

    from vaml_ext.mbpo.runner import compose

    plain, *_ = mbrl.util.env.EnvHandler.make_env(compose("mbpo_cartpole", ["device=cpu"]))
    assert not isinstance(plain, DistractorDims)
    cfg = compose("mbpo_cartpole", ["device=cpu", "seed=4", "overrides.distractor_dims=3"])
    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    assert isinstance(env, DistractorDims) and env.observation_space.shape == (plain.observation_space.shape[0] + 3,)
    np.testing.assert_array_equal(env.linear_map, test_env.linear_map)  # training and test envs: same maps
