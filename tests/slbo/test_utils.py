"""Normalisers, the ring-buffer dataset, OU noise, GAE."""

import numpy as np

from slbo.utils.dataset import Dataset
from slbo.utils.normalizer import GaussianNormalizer, Normalizers
from slbo.utils.OU_noise import OUNoise


def test_normalizer_running_update_equals_batch_statistics():
    rng = np.random.RandomState(0)
    norm = GaussianNormalizer("x", [3])
    a, b = rng.randn(500, 3) * [1, 2, 3] + [0, 5, -1], rng.randn(300, 3) * 0.5 + 2
    norm.update(a)
    np.testing.assert_allclose(norm.op_mean.numpy(), a.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.op_std.numpy(), a.std(0), rtol=1e-5)
    norm.update(b)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(norm.op_mean.numpy(), both.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.op_std.numpy(), both.std(0), rtol=1e-5)
    assert int(norm.op_n) == 800
    x = rng.randn(4, 3)
    np.testing.assert_allclose(norm.fast(norm.fast(x), inverse=True), x, rtol=1e-5, atol=1e-5)


def test_normalizers_triplet():
    n = Normalizers(dim_action=2, dim_state=5)
    assert n.state.shape == [5] and n.diff.shape == [5] and n.action.shape == [2]


def _ds(n):
    return Dataset([("state", "f8", (2,)), ("done", "bool"), ("timeout", "bool")], n)


def test_dataset_ring_buffer_and_multi_step_sampling():
    ds = _ds(10)
    recs = np.rec.fromarrays(
        [np.arange(14.0)[:, None].repeat(2, 1), np.zeros(14, bool), np.zeros(14, bool)], dtype=ds.dtype
    )
    ds.extend(recs[:7])
    assert len(ds) == 7
    ds.extend(recs[7:])
    assert len(ds) == 10
    # oldest 4 overwritten: storage holds 10..13 then 4..9
    np.testing.assert_array_equal(ds.state[:, 0], [10, 11, 12, 13, 4, 5, 6, 7, 8, 9])
    batch = ds.sample_multi_step(50, 1, 2)
    assert batch.state.shape == (2, 50, 2)
    np.testing.assert_array_equal(np.sort(np.unique(batch.state[0, :, 0])).size <= 10, True)
    # consecutive in storage order (modulo length)
    idx0 = [list(ds.state[:, 0]).index(v) for v in batch.state[0, :, 0]]
    np.testing.assert_array_equal(ds.state[(np.array(idx0) + 1) % 10, 0], batch.state[1, :, 0])
    sd = ds.state_dict()
    ds2 = _ds(10)
    ds2.load_state_dict(sd)
    np.testing.assert_array_equal(ds2.state, ds.state)


def test_iterator_yields_full_minibatches_only():
    ds = _ds(130)
    ds.extend(np.zeros(130, dtype=ds.dtype))
    sizes = [len(b) for b in ds.iterator(64)]
    assert sizes == [64, 64]


def test_ou_noise_statistics():
    from gymnasium.spaces import Box

    noise = OUNoise(Box(-1, 1, (2,)), theta=0.15, sigma=0.3, shape=(1, 2))
    xs = np.array([noise.next().copy() for _ in range(20000)])[:, 0]
    # stationary std of x_{t+1} = (1-θ) x_t + σ ε:  σ / sqrt(1 - (1-θ)^2)
    want = 0.3 / np.sqrt(1 - 0.85**2)
    assert abs(xs[2000:].std() - want) / want < 0.1
    assert abs(xs[2000:].mean()) < 0.15


def test_gae_matches_reference():
    from slbo.utils.runner import Runner

    class _Env:
        n_envs = 1
        observation_space = type("S", (), {"shape": (1,)})()
        action_space = type("S", (), {"shape": (1,)})()

        def reset(self):
            return np.zeros((1, 1))

    class _V:
        def get_values(self, s):
            return np.asarray(s)[..., 0] * 1.0

    runner = Runner(_Env(), max_steps=100, gamma=0.9, lambda_=0.5)
    n = 4
    ds = Dataset(
        [
            ("state", "f8", (1,)),
            ("action", "f8", (1,)),
            ("next_state", "f8", (1,)),
            ("reward", "f8"),
            ("done", "bool"),
            ("timeout", "bool"),
        ],
        n,
    )
    s = np.array([1.0, 2.0, 3.0, 4.0])
    ns = np.array([2.0, 3.0, 9.0, 5.0])
    r = np.array([1.0, 0.0, 2.0, 1.0])
    done = np.array([False, False, True, False])
    ds.extend(
        np.rec.fromarrays([s[:, None], np.zeros((n, 1)), ns[:, None], r, done, np.zeros(n, bool)], dtype=ds.dtype)
    )
    adv, val = runner.compute_advantage(_V(), ds)
    # hand GAE: V(s)=s, bootstrap V(next record's state) except after done
    g, lam = 0.9, 0.5
    d3 = r[3] + g * 5 - 4
    d2 = r[2] - 3
    d1 = r[1] + g * 3 - 2
    d0 = r[0] + g * 2 - 1
    a3 = d3
    a2 = d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    np.testing.assert_allclose(adv, [a0, a1, a2, a3], rtol=1e-6)
    np.testing.assert_allclose(val, s)
