"""Each objective and estimator against closed forms on hand-built cases (paper Eq. 8-10)."""

import math

import pytest
import torch

from vaml_ext.losses import (
    expected_value_categorical,
    expected_value_deterministic,
    expected_value_gaussian,
    frozen,
    get_loss_class,
    make_loss,
    model_advantage,
)


def test_ma_l1_and_vaml_hand_values():
    a = torch.tensor([1.0, -2.0, 0.5, 0.0])
    assert make_loss("ma_l1", coeff=1.0)(advantage=a).item() == pytest.approx((1 + 2 + 0.5) / 4)
    assert make_loss("ma_vaml", coeff=1.0)(advantage=a).item() == pytest.approx((1 + 4 + 0.25) / 4)
    assert make_loss("ma_l1")(advantage=a).item() == pytest.approx(0.01 * 3.5 / 4)  # paper coefficient


def test_masked_mean():
    a = torch.tensor([1.0, -3.0, 100.0])
    m = torch.tensor([1.0, 1.0, 0.0])
    assert make_loss("ma_l1", coeff=1.0)(advantage=a, mask=m).item() == pytest.approx(2.0)


def test_direct_forms_hand_values():
    # two trajectories, T = 3, gamma = 0.5
    a = torch.tensor([[1.0, 2.0, -4.0], [-1.0, 0.0, 8.0]])
    g = 0.5
    s1 = 1 + 0.5 * 2 + 0.25 * -4  # = 1
    s2 = -1 + 0 + 0.25 * 8  # = 1
    expect = (s1 + s2) / 2
    assert make_loss("ma_direct_l1", coeff=1.0)(advantage=a, gamma=g).item() == pytest.approx(abs(expect))
    assert make_loss("ma_direct_l2", coeff=1.0)(advantage=a, gamma=g).item() == pytest.approx(expect**2)
    # a mask that ends trajectory 2 after its first step
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert make_loss("ma_direct_l1", coeff=1.0)(advantage=a, gamma=g, mask=m).item() == pytest.approx(abs((1 - 1) / 2))


def test_direct_forms_reject_flat_input_and_bad_gamma():
    with pytest.raises(ValueError, match="num_traj, T"):
        make_loss("ma_direct_l1")(advantage=torch.ones(5))
    with pytest.raises(ValueError, match="gamma"):
        make_loss("ma_direct_l2")(advantage=torch.ones(2, 3), gamma=1.5)


@pytest.mark.parametrize("seed", range(20))
def test_upper_bound_property(seed):
    """ma_l1 in its summed form upper-bounds ma_direct_l1 (triangle inequality, Eq. 8 -> 10)."""
    g = torch.Generator().manual_seed(seed)
    m, T, gamma = 4, 7, 0.9
    a = torch.randn(m, T, generator=g) * torch.rand(1, generator=g) * 5
    direct = make_loss("ma_direct_l1", coeff=1.0)(advantage=a, gamma=gamma)
    disc = gamma ** torch.arange(T, dtype=a.dtype)
    # summed, discounted |A| per trajectory == T * ma_l1 on the discounted advantages
    bound = make_loss("ma_l1", coeff=1.0)(advantage=a * disc) * T
    assert direct.item() <= bound.item() + 1e-9


def test_vaml_does_not_bound_direct_l2():
    """Counterexample: constant advantages add up coherently along the trajectory."""
    a = torch.full((1, 10), 0.3)
    direct = make_loss("ma_direct_l2", coeff=1.0)(advantage=a, gamma=1.0)
    bound = make_loss("ma_vaml", coeff=1.0)(advantage=a) * 10
    assert direct.item() > bound.item()


def test_categorical_expectation_is_exact():
    probs = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], requires_grad=True)
    values = torch.tensor([1.0, -2.0, 4.0], requires_grad=True)
    ev = expected_value_categorical(probs, values)
    torch.testing.assert_close(ev, torch.tensor([0.2 - 1.0 + 1.2, 1.0]))
    ev.sum().backward()
    assert values.grad is None  # values are constants
    torch.testing.assert_close(probs.grad, values.detach().expand(2, 3))


def test_gaussian_expectation_quadratic_value_closed_form():
    """V(s) = |s|² -> E[V(ŝ)] = |μ|² + Σσ² for ŝ ~ N(μ, diag σ²)."""
    mu = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    std = torch.tensor([[0.5, 0.1], [1.0, 2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    ev = expected_value_gaussian(mu, std, lambda s: (s**2).sum(-1), num_samples=200_000, generator=g)
    exact = (mu**2).sum(-1) + (std**2).sum(-1)
    torch.testing.assert_close(ev, exact, rtol=0.02, atol=0.02)


def test_gaussian_expectation_linear_value_and_gradients():
    w = torch.tensor([2.0, -1.0])
    mu = torch.tensor([[1.0, 1.0]], requires_grad=True)
    std = torch.tensor([[0.3, 0.3]], requires_grad=True)
    g = torch.Generator().manual_seed(1)
    ev = expected_value_gaussian(mu, std, lambda s: s @ w, num_samples=50_000, generator=g)
    assert ev.item() == pytest.approx(1.0, abs=0.02)  # w·μ
    ev.sum().backward()
    torch.testing.assert_close(mu.grad, w.unsqueeze(0))  # d E / dμ = w, exactly
    with pytest.raises(ValueError, match="va_samples"):
        expected_value_gaussian(mu, std, lambda s: s @ w, num_samples=0)


def test_deterministic_and_advantage():
    pred = torch.tensor([[1.0, 2.0]], requires_grad=True)
    v_true = torch.tensor([5.0], requires_grad=True)
    ev = expected_value_deterministic(pred, lambda s: s.sum(-1))
    a = model_advantage(v_true, ev)
    assert a.item() == pytest.approx(2.0)
    a.sum().backward()
    assert v_true.grad is None  # V(s') is a constant target
    torch.testing.assert_close(pred.grad, -torch.ones(1, 2))


def test_frozen_value_net_gets_no_gradient_but_passes_it_through():
    net = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3, requires_grad=True)
    with frozen([net]):
        net(x).sum().backward()
    assert net.weight.grad is None and x.grad is not None
    assert all(p.requires_grad for p in net.parameters())  # restored


def test_unknown_loss_lists_valid_names():
    from vaml_ext.losses import UnknownLossError

    with pytest.raises(UnknownLossError) as e:
        make_loss("ma_l3")
    assert "ma_l1" in str(e.value) and "mle" in str(e.value) and "model_loss='ma_l3'" in str(e.value)
    assert not math.isnan(0)


# ----------------------------------------------------------------------------- reduction
@pytest.mark.parametrize("name", ["mle", "ma_l1", "ma_vaml"])
def test_sum_reduction_is_count_times_mean(name):
    cls = get_loss_class(name)
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    key = cls.in_keys[0]
    mean, total = cls(coeff=0.3), cls(coeff=0.3, reduction="sum")
    assert mean.reduction == "mean" and total.reduction == "sum"
    torch.testing.assert_close(total(**{key: x}), x.numel() * mean(**{key: x}))
    mask = (torch.arange(7) < 5).double().expand(4, 7)
    torch.testing.assert_close(total(**{key: x, "mask": mask}), 20 * mean(**{key: x, "mask": mask}))


def test_unknown_reduction_names_the_valid_ones():
    with pytest.raises(
        ValueError, match="reduction='max' is invalid for model_loss='ma_l1': expected one of mean, sum"
    ):
        get_loss_class("ma_l1")(reduction="max")
