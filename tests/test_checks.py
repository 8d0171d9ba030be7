"""vaml_ext.checks: one wording for every invalid setting, in every layer."""

import numpy as np
import pytest

from vaml_ext.checks import SettingError, check_bool, check_choice, check_int, check_number


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check_int("k", 1.5), "k=1.5 is invalid: expected an integer"),
        (lambda: check_int("k", True, 0), "k=True is invalid: expected an integer >= 0"),
        (lambda: check_int("k", -1, 0), "k=-1 is invalid: expected an integer >= 0"),
        (lambda: check_number("k", float("nan")), "k=nan is invalid: expected a finite number"),
        (lambda: check_number("k", 0, 0.0, lo_open=True), "k=0 is invalid: expected a finite number > 0"),
        (lambda: check_number("k", 1.5, 0.0, 1.0), "k=1.5 is invalid: expected a finite number >= 0 and <= 1"),
        (lambda: check_number("k", "x", allow_none=True), "k='x' is invalid: expected a finite number or null"),
        (lambda: check_bool("k", "yes"), "k='yes' is invalid: expected true or false"),
        (lambda: check_choice("k", "c", ["a", "b"], "for m"), "k='c' is invalid for m: expected one of a, b"),
    ],
)
def test_one_wording(call, message):
    with pytest.raises(SettingError) as e:
        call()
    assert str(e.value) == message and isinstance(e.value, ValueError)


def test_accepted_values_come_back_converted():
    assert check_int("k", np.int64(3), 1) == 3 and type(check_int("k", np.int64(3))) is int
    assert check_number("k", 2) == 2.0 and check_number("k", None, allow_none=True) is None
    assert check_bool("k", False) is False and check_choice("k", "a", ("a",)) == "a"


def test_every_layer_uses_it():
    """The MBPO plugin, the gridworld's Dyna config and the loss registry say it the same way."""
    from vaml_ext.gridworld.dyna import DynaConfig
    from vaml_ext.losses import make_loss

    with pytest.raises(SettingError, match=r"^dyna\.model_lr=-1\.0 is invalid: expected a finite number > 0$"):
        DynaConfig(model_lr=-1.0)
    with pytest.raises(SettingError, match=r"^dyna\.gamma=2\.0 is invalid: expected a finite number >= 0 and <= 1$"):
        DynaConfig(gamma=2.0)
    with pytest.raises(SettingError, match=r"^va_loss_coeff=0 is invalid for model_loss='ma_l1'"):
        make_loss("ma_l1", coeff=0)
