"""Imports point one way: vaml_ext.losses <- vaml_ext.{mbpo, slbo, gridworld} <- vaml_ext.exp,
and vaml_ext.runlog is a leaf every layer may use.

Every module under vaml_ext/ is parsed with ``ast``; module-level *and* function-level
imports count (a function-level import only hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "vaml_ext"

#: package -> vaml_ext packages it must never import
FORBIDDEN = {
    "runlog": {"losses", "mbpo", "slbo", "gridworld", "exp", "patching", "demo"},
    "losses": {"mbpo", "slbo", "gridworld", "exp", "runlog", "demo"},
    "mbpo": {"slbo", "gridworld", "exp", "demo"},
    "slbo": {"mbpo", "gridworld", "exp", "demo"},
    "gridworld": {"mbpo", "slbo", "exp", "demo"},
    "patching": {"losses", "mbpo", "slbo", "gridworld", "exp", "runlog", "demo"},
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "vaml_ext" else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, at any depth."""
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]  # `from vaml_ext import exp`
    return out


def wrong_way_arrows() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        src = _package(_module_name(path))
        for line, target in imports_of(path):
            dst = _package(target)
            if src in FORBIDDEN and dst in FORBIDDEN[src]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line}: vaml_ext.{src} imports {target}")
    return sorted(set(bad))


def test_no_import_points_the_wrong_way():
    bad = wrong_way_arrows()
    assert not bad, "imports against the layering (losses <- mbpo/slbo/gridworld <- exp; runlog a leaf):\n" + "\n".join(
        bad
    )


def test_the_checker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The checker itself: a hidden (function-level) and a relative import of exp from a lower layer."""
    fake = tmp_path / "vaml_ext"
    (fake / "gridworld").mkdir(parents=True)
    (fake / "exp").mkdir()
    (fake / "gridworld" / "__init__.py").write_text("")
    (fake / "gridworld" / "run.py").write_text("def f():\n    from vaml_ext.exp.progress import X\n")
    (fake / "gridworld" / "rel.py").write_text("from ..exp import backends\n")
    (fake / "gridworld" / "ok.py").write_text("import vaml_ext.losses\nfrom vaml_ext.runlog import rundir\n")
    monkeypatch.setitem(globals(), "PKG", fake)
    bad = wrong_way_arrows()
    assert any("gridworld/run.py:2" in b and "vaml_ext.exp.progress" in b for b in bad), bad
    assert any("gridworld/rel.py:1" in b for b in bad), bad
    assert not any("ok.py" in b for b in bad), bad


@pytest.mark.parametrize("pair", [("objectives", "registry")])
def test_losses_modules_do_not_import_each_other_both_ways(pair):
    """losses/objectives.py registers into registry.py; registry.py must not import objectives back."""
    a, b = (PKG / "losses" / f"{n}.py" for n in pair)
    a_imports_b = any(t.endswith(f"losses.{pair[1]}") for _, t in imports_of(a))
    b_imports_a = any(t.endswith(f"losses.{pair[0]}") for _, t in imports_of(b))
    assert not (a_imports_b and b_imports_a), f"{a.name} and {b.name} import each other"


def test_setup_py_shim_reads_the_metadata_from_pyproject():
    """`setup.py` (fixed at the top level) is a shim: the version comes from pyproject.toml's
    dynamic version, i.e. vaml_ext.__version__."""
    import subprocess
    import sys

    import vaml_ext

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "setup.py", "--version"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == vaml_ext.__version__
