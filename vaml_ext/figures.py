"""The paper's figures as configured in ``exp/conf/figure/<name>.yaml``: envs, methods,
seeds and budget presets, defined once there and read here by every consumer (the
sweep app, the claims report, the MBPO test settings in :mod:`vaml_ext.mbpo.runner`).

A leaf module: it imports nothing from ``vaml_ext``, so every layer may use it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

FIGURE_DIR = Path(__file__).resolve().parents[1] / "exp" / "conf" / "figure"


def figure_names() -> list[str]:
    """``fig1``, ``fig2``, ... : the figure configs under :data:`FIGURE_DIR`."""
    return sorted(p.stem for p in FIGURE_DIR.glob("*.yaml"))


@functools.cache
def _load(name: str) -> dict[str, Any]:
    import yaml

    path = FIGURE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"figure={name!r} has no config {path}; valid: {', '.join(figure_names())}")
    return yaml.safe_load(path.read_text())


def load_figure(name: str) -> dict[str, Any]:
    """The parsed ``exp/conf/figure/<name>.yaml`` (a fresh copy: callers may modify it)."""
    import copy

    return copy.deepcopy(_load(name))


def preset_budget(figure: dict[str, Any], preset: str, env: str) -> Any:
    """The budget of ``env`` under ``preset``: its own entry, else the preset's ``default``."""
    presets = figure.get("presets") or {}
    if preset not in presets:
        raise KeyError(f"preset={preset!r} is not defined for {figure['name']}; valid: {', '.join(presets)}")
    budget = presets[preset].get("budget") or {}
    return budget.get(env, budget.get("default"))
