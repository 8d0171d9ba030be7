"""SLBO's multi-step loss equals a hand computation; the model's forward is upstream's."""

import numpy as np
import pytest
import torch

from slbo.dynamics_model import DynamicsModel
from slbo.loss.criteria import L1Loss, L2Loss, MSELoss
from slbo.loss.multi_step_loss import MultiStepLoss
from slbo.utils.normalizer import Normalizers

DS, DA, B = 4, 2, 5


def _setup():
    norms = Normalizers(DA, DS)
    rng = np.random.RandomState(1)
    norms.state.update(rng.randn(200, DS) * 2 + 1)
    norms.diff.update(rng.randn(200, DS) * 0.3)
    model = DynamicsModel(DS, DA, norms, [16, 16])
    with torch.no_grad():  # non-trivial weights (upstream init is ~1e-5)
        for p in model.parameters():
            p.normal_(0, 0.5)
    return norms, model, rng


def _np_model(model, norms, s, a):
    """Upstream DynamicsModel.forward, in NumPy, from the torch weights."""
    ms, ss = norms.state.op_mean.numpy().astype(np.float64), norms.state.op_std.numpy().astype(np.float64)
    md, sd = norms.diff.op_mean.numpy().astype(np.float64), norms.diff.op_std.numpy().astype(np.float64)
    x = np.concatenate([(s - ms) / np.maximum(ss, 1e-8), np.clip(a, -1, 1)], axis=1)
    layers = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(layers):
        x = x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    nxt = s + x * sd + md
    return np.clip((nxt - ms) / np.maximum(ss, 1e-8), -100, 100) * ss + ms


@pytest.mark.parametrize("crit_name", ["L2", "MSE", "L1"])
def test_two_step_loss_matches_hand_computation(crit_name):
    norms, model, rng = _setup()
    crit = {"L2": L2Loss(), "MSE": MSELoss(), "L1": L1Loss()}[crit_name]
    loss_mod = MultiStepLoss(model, norms, DS, DA, crit, step=2)
    states = rng.randn(2, B, DS)
    actions = rng.randn(2, B, DA) * 1.5  # some beyond [-1, 1]: the model clips
    next_states = rng.randn(2, B, DS)
    masks = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=np.float64)

    got = loss_mod.get_loss(states, next_states, actions, masks)

    sd = np.maximum(norms.diff.op_std.numpy().astype(np.float64), 1e-6)
    reduce = {
        "L2": lambda e: np.sqrt((e**2).mean(1)),
        "MSE": lambda e: (e**2).mean(1),
        "L1": lambda e: np.abs(e).mean(1),
    }[crit_name]
    # step 0 from the real state
    pred1 = _np_model(model, norms, states[0], actions[0])
    e0 = ((pred1 - states[0]) - (next_states[0] - states[0])) / sd
    # step 1 from the predicted state where the mask is 1, from the real s_1 where it is 0
    cur = np.where(masks[0][:, None] > 0, pred1, states[1])
    pred2 = _np_model(model, norms, cur, actions[1])
    e1 = ((pred2 - cur) - (next_states[1] - states[1])) / sd
    want = (reduce(e0) + reduce(e1)) / 2
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


def test_perfect_prediction_gives_zero_loss():
    norms = Normalizers(DA, DS)
    model = DynamicsModel(DS, DA, norms, [8])  # init ~1e-5: predicts s' = s + mean diff (0)
    loss_mod = MultiStepLoss(model, norms, DS, DA, L2Loss(), step=2)
    s = np.random.randn(2, B, DS)
    s[1] = s[0]
    got = loss_mod.get_loss(s, s.copy(), np.zeros((2, B, DA)), np.ones((2, B)))
    assert np.abs(got).max() < 1e-3


def test_train_step_reduces_loss_and_clips():
    norms, model, rng = _setup()
    loss_mod = MultiStepLoss(model, norms, DS, DA, L2Loss(), step=2)
    loss_mod.build_backward(1e-3, 1e-5)
    states = rng.randn(2, 64, DS)
    actions = rng.randn(2, 64, DA)
    next_states = states + 0.1
    masks = np.ones((2, 64))
    first, gn = loss_mod.train_step(states, next_states, actions, masks)
    for _ in range(200):
        loss_mod.train_step(states, next_states, actions, masks)
    last = loss_mod.get_loss(states, next_states, actions, masks)
    assert gn > 0
    assert last.mean() < 0.5 * first.mean()


def test_model_init_is_tiny_truncated_normal():
    norms = Normalizers(DA, DS)
    model = DynamicsModel(DS, DA, norms, [500, 500])
    w = torch.cat([m.weight.detach().reshape(-1) for m in model.net if isinstance(m, torch.nn.Linear)])
    assert float(w.abs().max()) <= 2e-5
    assert 0.5e-5 < float(w.std()) < 1e-5
