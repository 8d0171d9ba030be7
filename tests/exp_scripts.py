"""Load a script of ``exp/<group>/`` as a module (they are scripts, not a package), for the
tests that run them on tiny budgets or check their input validation."""

import importlib.util
from pathlib import Path

EXP = Path(__file__).resolve().parents[1] / "exp"


def load_exp_script(group: str, name: str):
    spec = importlib.util.spec_from_file_location(f"exp_{group}_{name}", EXP / group / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
