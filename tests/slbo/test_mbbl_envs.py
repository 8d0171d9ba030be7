"""MBBL Pendulum and Acrobot (vaml_ext/slbo/mbbl_envs.py): rewards, dynamics and termination
against values computed from MBBL's formulas (va_slbo slbo/envs/bm_envs/gym/pendulum.py,
acrobot.py), mb_step against step, and setting=paper selecting them."""

import math

import numpy as np
import pytest

from vaml_ext.slbo.mbbl_envs import ACROBOT_ID, PENDULUM_ID, register
from vaml_ext.slbo.settings import setting_flags


@pytest.fixture(scope="module")
def envs():
    from slbo import partial_envs  # the port (tests/slbo/conftest.py puts it on the path)

    register()
    register()  # idempotent
    return partial_envs.ENVS[PENDULUM_ID], partial_envs.ENVS[ACROBOT_ID]


def _mbbl_pendulum_step(th, thdot, a):
    """MBBL's _step, written out: (reward, next θ, next θ̇)."""
    u = min(max(a, -2.0), 2.0)
    cost = math.cos(th) + 0.1 * abs(math.sin(th)) + 0.1 * thdot**2 + 0.001 * u**2
    newthdot = thdot + (-3 * 10.0 / 2 * math.sin(th + math.pi) + 3.0 * u) * 0.05
    newth = th + newthdot * 0.05
    return -cost, newth, min(max(newthdot, -8.0), 8.0)


def test_pendulum_reward_and_dynamics_are_mbbls(envs):
    env = envs[0]()
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        th, thdot, a = rng.uniform(-4, 4), rng.uniform(-8, 8), rng.uniform(-3, 3)
        env.state = np.array([th, thdot])
        obs, r, terminated, truncated, _ = env.step(np.array([a]))
        r_ref, th_ref, thdot_ref = _mbbl_pendulum_step(th, thdot, a)
        assert r == pytest.approx(r_ref, abs=1e-12) and not terminated and not truncated
        assert env.state == pytest.approx([th_ref, thdot_ref], abs=1e-12)
        assert obs == pytest.approx([math.cos(th_ref), math.sin(th_ref), thdot_ref], abs=1e-12)
    # hanging still at the bottom scores +1 per step, upright -1: not Gymnasium's swing-up
    env.state = np.array([math.pi, 0.0])
    assert env.step(np.array([0.0]))[1] == pytest.approx(1.0)
    env.state = np.array([0.0, 0.0])
    assert env.step(np.array([0.0]))[1] == pytest.approx(-1.0)


def test_pendulum_damping_controller_scores_near_the_maximum(envs):
    """A controller that only damps the swing lets the pole settle at the bottom: close to
    +1 per step, where holding it upright would give -1 per step (-200 per episode)."""
    env = envs[0]()
    obs, _ = env.reset(seed=3)
    total = 0.0
    for _ in range(200):
        obs, r, *_ = env.step(np.array([-0.5 * obs[2]]))
        total += r
    assert 120.0 < total <= 200.0


def test_acrobot_three_torques_dense_reward_no_termination(envs):
    from gymnasium.envs.classic_control import acrobot

    env = envs[1]()
    ref = acrobot.AcrobotEnv()  # the discrete Acrobot MBBL's class also is (RLPy's book dynamics)
    env.reset(seed=0)
    ref.reset(seed=0)
    rng = np.random.default_rng(2)
    for a, idx in [(-0.9, 0), (-0.34, 0), (-0.33, 1), (0.0, 1), (0.329, 1), (0.33, 2), (1.0, 2), (5.0, 2)]:
        s = rng.uniform(-np.pi, np.pi, size=4) * np.array([1, 1, 0.5, 0.5])
        env.state, ref.state = s.copy(), s.copy()
        obs, r, terminated, truncated, _ = env.step(np.array([a]))
        ref.step(idx)
        assert np.array_equal(env.state, ref.state), (a, idx)
        assert r == pytest.approx(-math.cos(s[0]) - math.cos(s[0] + s[1]), abs=1e-12)  # before the step
        assert not terminated and not truncated
    env.state = np.array([np.pi, 0.0, 0.0, 0.0])  # tip straight up: Acrobot-v1 would terminate
    assert env.step(np.array([0.0]))[2:4] == (False, False)


@pytest.mark.parametrize("which", [0, 1])
def test_mb_step_reproduces_step(envs, which):
    env = envs[which]()
    assert env.verify(n=1000, eps=1e-9, seed=5) < 1e-9


def test_paper_setting_selects_them():
    assert f"env.id={PENDULUM_ID}" in setting_flags("paper", "pendulum", "ma_l1")
    assert f"env.id={ACROBOT_ID}" in setting_flags("paper", "acrobot", "mle_va_slbo")
    assert not any(f.startswith("env.id=") for f in setting_flags("paper", "hopper", "ma_l1"))
    assert setting_flags("upstream", "pendulum", "ma_l1") == []  # upstream: Gymnasium's Pendulum-v1


RESUME = """
import numpy as np
from slbo import partial_envs
from vaml_ext.slbo.mbbl_envs import register
register()
for name in ("MBBLPendulum-v0", "MBBLAcrobot-v0"):
    env, twin = partial_envs.ENVS[name](), partial_envs.ENVS[name]()
    env.reset(seed=4)
    twin.reset(seed=9)
    env.step(np.array([0.3]))
    twin.load_state_dict(env.state_dict())
    a, b = env.step(np.array([-1.0])), twin.step(np.array([-1.0]))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1], name
    assert np.array_equal(env.reset()[0], twin.reset()[0]), name  # the generator came along
print("ok")
"""


def test_resume_state_covers_the_simulator(tree):
    """The patched port's checkpoint (BaseModelBasedEnv.state_dict, patch 0009) restores an
    MBBL env exactly: simulator state and generators."""
    import os
    import subprocess
    import sys

    from tests.slbo.conftest import REPO

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(REPO)]))
    out = subprocess.run([sys.executable, "-c", RESUME], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
