"""Name -> class registry of model losses, shared by MBPO, the SLBO port and the gridworld.

Modelled on Stable-Baselines3's ``policy_aliases``: a plain mapping that fails loudly
(with the list of valid names) on unknown keys, so a typo in ``overrides.model_loss``
is reported before any training starts. The built-in losses register themselves in
:mod:`vaml_ext.losses.objectives`, which the package ``__init__`` imports, so this
module imports no loss module (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from vaml_ext.losses.base import ModelLoss

T = TypeVar("T")

_REGISTRY: dict[str, type[ModelLoss]] = {}


class UnknownLossError(KeyError, ValueError):
    """Raised for a model-loss name that is not registered."""

    def __init__(self, name: str, key: str = "model_loss"):
        self.name = name
        self.key = key
        valid = ", ".join(available_losses())
        msg = f"{key}={name!r} is not a registered model loss; valid names: {valid}"
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.message


def register_loss(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a :class:`~vaml_ext.losses.base.ModelLoss` under ``name``.

    Registering a different class under an existing name is an error (silent
    overwrites would make ``model_loss=...`` ambiguous); re-registering the same class
    (module reload) is allowed.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValueError(f"invalid loss name {name!r}: use [a-z0-9_]+")

    def deco(cls: type[T]) -> type[T]:
        prev = _REGISTRY.get(name)
        if prev is not None and prev.__qualname__ != cls.__qualname__:
            raise ValueError(f"model loss {name!r} already registered by {prev!r}")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def available_losses() -> list[str]:
    """Sorted names of all registered model losses."""
    return sorted(_REGISTRY)


def get_loss_class(name: str, key: str = "model_loss") -> type[ModelLoss]:
    """The class registered under ``name``; :class:`UnknownLossError` otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownLossError(str(name), key) from None


def make_loss(name: str, key: str = "model_loss", **kwargs):
    """Instantiate the loss registered under ``name`` with ``kwargs``."""
    return get_loss_class(name, key)(**kwargs)
