"""The two pinned mbrl-lib bases an MBPO figure sweep runs on (``--base`` of the figure command).

* ``current`` (default) -- mbrl 0.2.0 + ``patches/mbrl-lib``, built by ``make install``
  (``.venv``); MBPO runs use the interpreter that runs the sweep.
* ``paper`` -- mbrl 0.2.0.dev3 + ``patches/mbrl-lib-dev3``, the base of the authors' MBPO
  fork (``nirbhayjm/va_mbpo``), built by ``make install-paper`` (``.venv-paper``); MBPO
  runs use ``.venv-paper/bin/python``.

A figure config may set a preset's base (``presets.<name>.base``; Figure 3's ``paper``
preset runs on the paper base) and, per base, ``bases.<name>.settings`` (overrides every
MBPO run of that base gets, e.g. ``overrides.profile=paper``) and
``bases.<name>.budget_keys`` (budget keys that have another name on that base, ``null``:
not settable there). ``run.yaml`` records the base with its pin (upstream version and
sdist sha256 from ``patches/<series>/upstream.toml``).
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from vaml_ext.checks import invalid
from vaml_ext.runlog.rundir import REPO

DEFAULT_BASE = "current"
#: name -> patch series (``patches/<series>/``), venv, and the command that builds it
BASES: dict[str, dict[str, str]] = {
    "current": {"series": "mbrl-lib", "venv": ".venv", "install": "make install"},
    "paper": {"series": "mbrl-lib-dev3", "venv": ".venv-paper", "install": "make install-paper"},
}
#: overrides the paper base's venv (tests; a venv built elsewhere)
PAPER_VENV_ENV = "VAML_PAPER_VENV"


class BaseError(ValueError):
    """An unknown base, a base a figure cannot use, or a base that is not installed."""


class BaseNotInstalled(BaseError):
    pass


def check_base(name: Any, where: str = "base") -> str:
    if name not in BASES:
        raise BaseError(str(invalid(where, name, "one of " + ", ".join(BASES))))
    return name


def base_for(figure: dict, preset: str, chosen: str | None = None) -> str:
    """The base of a sweep: ``chosen`` (``--base`` / ``base=``), else the preset's ``base``
    key, else ``current``. Only MBPO figures can run on another base than ``current``."""
    preset_base = ((figure.get("presets") or {}).get(preset) or {}).get("base")
    if preset_base is not None:
        check_base(preset_base, f"{figure['name']} preset {preset}: base")
    base = check_base(chosen, "base") if chosen is not None else (preset_base or DEFAULT_BASE)
    if base != DEFAULT_BASE and figure.get("backend") != "mbpo":
        raise BaseError(
            f"base={base} applies to MBPO figures only; {figure['name']} runs the "
            f"{figure.get('backend')} backend (use base={DEFAULT_BASE})"
        )
    return base


def preset_base(figure: dict, preset: str) -> str:
    """The base a preset runs on when none is chosen."""
    return base_for(figure, preset, None)


def pin(name: str) -> dict[str, Any]:
    """What ``run.yaml`` records: the base, its patch series and the pinned upstream."""
    series = BASES[check_base(name)]["series"]
    spec = tomllib.loads((REPO / "patches" / series / "upstream.toml").read_text())
    return {
        "name": name,
        "series": f"patches/{series}",
        "package": spec.get("package"),
        "version": spec.get("version"),
        "sha256": spec.get("sha256"),
    }


def venv_dir(name: str) -> Path:
    if name == "paper" and os.environ.get(PAPER_VENV_ENV):
        return Path(os.environ[PAPER_VENV_ENV])
    return REPO / BASES[check_base(name)]["venv"]


def interpreter(name: str) -> str:
    """The Python that runs MBPO on base ``name``; raises :class:`BaseNotInstalled` (naming the
    make target) when the paper base's venv is missing."""
    if check_base(name) == DEFAULT_BASE:
        return sys.executable
    py = venv_dir(name) / "bin" / "python"
    if not py.exists():
        raise BaseNotInstalled(
            f"base={name} runs MBPO with {py}, which is missing: build the paper base with "
            f"`{BASES[name]['install']}` (mbrl {pin(name)['version']}, {BASES[name]['series']} series)"
        )
    return str(py)


def base_budget(figure: dict, base: str, budget: list[str] | None) -> list[str] | None:
    """``budget`` with the keys that have another name on ``base`` renamed (dropped when
    ``null``), per the figure's ``bases.<base>.budget_keys``."""
    keys = ((figure.get("bases") or {}).get(base) or {}).get("budget_keys") or {}
    if budget is None or not keys:
        return budget
    out = []
    for item in budget:
        key, sep, value = str(item).partition("=")
        bare = key.lstrip("+")
        if bare in keys:
            if keys[bare] is None:
                continue
            key = key[: len(key) - len(bare)] + keys[bare]
        out.append(f"{key}{sep}{value}")
    return out


def base_settings(figure: dict, base: str) -> list[str]:
    return list(((figure.get("bases") or {}).get(base) or {}).get("settings") or [])
