"""Validation of user settings, in one place and one wording for MBPO, SLBO, the gridworld
and the sweeps: ``<key>=<value> is invalid: expected <what>``.

A leaf module (it imports nothing from ``vaml_ext``), so every layer may use it. Each check
returns the value it accepted (``check_number`` as a ``float``), so a caller can validate and
convert in one step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class SettingError(ValueError):
    """A setting has a value it cannot take."""


def invalid(key: str, value: Any, expected: str, context: str = "") -> SettingError:
    """``<key>=<value> is invalid[ <context>]: expected <expected>``."""
    return SettingError(f"{key}={value!r} is invalid{' ' + context if context else ''}: expected {expected}")


def check_int(key: str, v: Any, minimum: int | None = None, context: str = "") -> int:
    """An integer (not a bool), at least ``minimum`` if given."""
    import numbers

    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise invalid(key, v, "an integer" + (f" >= {minimum}" if minimum is not None else ""), context)
    if minimum is not None and v < minimum:
        raise invalid(key, v, f"an integer >= {minimum}", context)
    return int(v)


def check_number(
    key: str,
    v: Any,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    allow_none: bool = False,
    context: str = "",
) -> float | None:
    """A finite real number (not a bool) in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``);
    ``None`` passes when ``allow_none``."""
    import numbers

    if v is None and allow_none:
        return None
    lo_s = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
    hi_s = "" if hi is None else f"<= {hi:g}"
    bounds = " and ".join(b for b in (lo_s, hi_s) if b)
    what = "a finite number" + (f" {bounds}" if bounds else "") + (" or null" if allow_none else "")
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise invalid(key, v, what, context)
    x = float(v)
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise invalid(key, v, what, context)
    if hi is not None and x > hi:
        raise invalid(key, v, what, context)
    return x


def check_bool(key: str, v: Any, context: str = "") -> bool:
    if not isinstance(v, bool):
        raise invalid(key, v, "true or false", context)
    return v


def check_choice(key: str, v: Any, choices: Iterable[Any], context: str = "") -> Any:
    choices = list(choices)
    if v not in choices:
        raise invalid(key, v, "one of " + ", ".join(str(c) for c in choices), context)
    return v
