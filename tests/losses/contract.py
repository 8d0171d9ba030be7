"""Contract-test base class every registered model loss must pass (TorchRL style).

Subclass :class:`LossContract` and set ``loss_name``; ``make_inputs`` builds a valid
input dict (override it for losses whose ``in_keys`` are not ``advantage``/``nll``).
``tests/losses/test_contract.py`` parametrises it over *every* registered name, so a
loss registered without passing it fails CI.
"""

from __future__ import annotations

import pytest
import torch

from vaml_ext.losses import ModelLoss, get_loss_class


def default_inputs(cls, requires_grad=True, zero=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in cls.in_keys:
        if key == "advantage":
            shape = (6, 9) if cls.needs_trajectories else (32,)
        elif key == "error":  # a prediction error [B, d]
            shape = (32, 5)
        elif key == "value_grad":  # per-head value gradients [H, B, d]: weights, not differentiated
            shape = (4, 32, 5)
        else:
            shape = (32,)
        x = torch.zeros(shape) if zero else torch.randn(shape, generator=g)
        if key == "nll" or key.endswith("sq_err"):  # non-negative inputs (errors, NLLs)
            x = x.abs() if not zero else x
        out[key] = x.double().requires_grad_(requires_grad and key != "value_grad")
    return out


class LossContract:
    loss_name: str = ""

    def make_inputs(self, cls, requires_grad=True, zero=False, seed=0):
        return default_inputs(cls, requires_grad=requires_grad, zero=zero, seed=seed)

    @property
    def cls(self):
        return get_loss_class(self.loss_name)

    def test_is_parameter_free_module(self):
        loss = self.cls()
        assert isinstance(loss, ModelLoss)
        assert loss.name == self.loss_name
        assert list(loss.parameters()) == []

    def test_scalar_finite_nonnegative(self):
        loss = self.cls()
        for seed in range(3):
            val = loss(**self.make_inputs(self.cls, seed=seed))
            assert val.dim() == 0
            assert torch.isfinite(val)
            assert val.item() >= 0.0

    def test_gradient_reaches_inputs(self):
        inputs = self.make_inputs(self.cls)
        self.cls()(**inputs).backward()
        grads = [v.grad for v in inputs.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)

    def test_zero_at_perfect_model(self):
        if not self.cls.value_aware:
            pytest.skip("zero-error input only defined for value-aware losses")
        val = self.cls()(**self.make_inputs(self.cls, zero=True))
        assert val.item() == 0.0

    def test_linear_in_coeff(self):
        inputs = self.make_inputs(self.cls, requires_grad=False)
        a = self.cls(coeff=1.0)(**inputs)
        b = self.cls(coeff=0.25)(**inputs)
        torch.testing.assert_close(b, 0.25 * a)

    @pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
    def test_rejects_bad_coeff(self, bad):
        with pytest.raises(ValueError, match="coeff"):
            self.cls(coeff=bad)

    def test_missing_input_names_keys(self):
        with pytest.raises(KeyError, match=self.cls.in_keys[0]):
            self.cls()()

    def test_default_coeff(self):
        assert self.cls().coeff == self.cls.default_coeff
        if self.cls.takes_refit:  # the model-advantage paper's losses: its va_loss_coeff
            assert self.cls().coeff == pytest.approx(0.01)

    def test_refit_property_is_a_bool(self):
        assert isinstance(self.cls.takes_refit, bool)
        assert not self.cls.takes_refit or self.cls.value_aware  # a refit only serves a value-aware loss
