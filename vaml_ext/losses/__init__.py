"""Shared model-loss registry and value estimators (see :mod:`.registry`, :mod:`.base`)."""

from vaml_ext.losses.base import ModelLoss
from vaml_ext.losses.estimators import (
    expected_value_categorical,
    expected_value_deterministic,
    expected_value_gaussian,
    frozen,
    model_advantage,
)
from vaml_ext.losses.objectives import DEFAULT_VA_LOSS_COEFF
from vaml_ext.losses.registry import (
    UnknownLossError,
    available_losses,
    get_loss_class,
    make_loss,
    register_loss,
)

__all__ = [
    "DEFAULT_VA_LOSS_COEFF",
    "ModelLoss",
    "UnknownLossError",
    "available_losses",
    "expected_value_categorical",
    "expected_value_deterministic",
    "expected_value_gaussian",
    "frozen",
    "get_loss_class",
    "make_loss",
    "model_advantage",
    "register_loss",
]
