"""The authors' Ant/Humanoid rewards (mujoco-py 2.1: no contact forces), vaml_ext/mbpo/envs.py."""

import gymnasium as gym
import numpy as np
import pytest

from vaml_ext.mbpo import plugin  # noqa: F401  (registers the variants, as loading the plugin does)
from vaml_ext.mbpo.envs import VARIANTS

PAIRS = [
    ("vaml/AntTruncatedObsNoContactForces-v0", "AntTruncatedObsEnv", "reward_contact"),
    ("vaml/HumanoidTruncatedObsNoContactForces-v0", "HumanoidTruncatedObsEnv", "reward_impact"),
]


@pytest.mark.parametrize("env_id,base,cost_key", PAIRS)
def test_same_trajectory_without_the_contact_term(env_id, base, cost_key):
    import mbrl.env.mujoco_envs as envs

    assert env_id in VARIANTS and env_id in gym.registry
    variant = gym.make(env_id)
    original = gym.wrappers.TimeLimit(getattr(envs, base)(), max_episode_steps=1000)
    assert variant.spec.max_episode_steps == 1000
    o1, _ = variant.reset(seed=3)
    o2, _ = original.reset(seed=3)
    assert np.array_equal(o1, o2)
    rng = np.random.default_rng(0)
    costs = []
    for _ in range(60):
        a = rng.uniform(-1, 1, size=variant.action_space.shape)
        s1, r1, t1, _, i1 = variant.step(a)
        s2, r2, t2, _, i2 = original.step(a)
        assert np.array_equal(s1, s2) and t1 == t2  # cfrc_ext feeds only the reward
        assert i1[cost_key] == 0.0
        assert r1 == pytest.approx(r2 - i2[cost_key], abs=1e-9)
        costs.append(i2[cost_key])
        if t1:
            break
    assert min(costs) < 0.0  # the maintained bindings' contact forces do cost something


def test_mbrl_builds_the_variant_through_its_gym_path():
    import mbrl.util

    from vaml_ext.mbpo.runner import compose

    cfg = compose(
        "mbpo_ant",
        ["device=cpu", "overrides.env=gym___vaml/AntTruncatedObsNoContactForces-v0", "++overrides.term_fn=ant"],
    )
    env, term_fn, _ = mbrl.util.create_handler(cfg).make_env(cfg)
    assert type(env.unwrapped).__name__ == "AntTruncatedObsNoContactForces" and term_fn.__name__ == "ant"
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["reward_contact"] == 0.0
