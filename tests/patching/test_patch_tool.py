"""vaml-patch on throw-away upstreams: apply / check / diff / refresh and every error path."""

import hashlib
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from vaml_ext.patching import (
    FetchError,
    HashMismatchError,
    LocalEditsError,
    PatchApplyError,
    SpecError,
    apply,
    check,
    diff,
    load_spec,
    refresh,
    status,
)
from vaml_ext.patching.cli import main as cli_main
from vaml_ext.patching.core import git


def _quiet(_msg):
    pass


def make_local_repo(tmp_path: Path) -> Path:
    """A repo with patches/demo (kind=local) whose upstream is upstream_src/."""
    root = tmp_path / "repo"
    src = root / "upstream_src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    (src / "README").write_text("demo upstream\n")
    pdir = root / "patches" / "demo"
    pdir.mkdir(parents=True)
    (root / "vaml_ext").mkdir()
    (pdir / "upstream.toml").write_text('name = "demo"\nkind = "local"\nsource = "upstream_src"\ndest = "build/demo"\n')
    (pdir / "series").write_text("")
    return root


def commit_edit(tree: Path, rel: str, old: str, new: str, msg: str):
    p = tree / rel
    p.write_text(p.read_text().replace(old, new))
    git(tree, "commit", "-qam", msg)


@pytest.fixture
def demo(tmp_path):
    root = make_local_repo(tmp_path)
    spec = load_spec(root, "demo")
    apply(spec, root, log=_quiet)
    tree = spec.dest
    commit_edit(tree, "pkg/mod.py", "return 1", "return 10", "first: f returns 10\n\nWhy: testing.")
    commit_edit(tree, "pkg/mod.py", "return 2", "return 20", "second: g returns 20")
    names = refresh(spec, root, log=_quiet)
    assert len(names) == 2
    return root, load_spec(root, "demo")


def test_refresh_writes_one_patch_per_commit_with_header(demo):
    root, spec = demo
    names = spec.series()
    assert names[0].startswith("0001-first") and names[1].startswith("0002-second")
    text = (spec.patch_dir / names[0]).read_text()
    assert "Why: testing." in text.split("\n---\n")[0]  # commit message is the header
    assert status(spec) == "up to date"


def test_apply_is_idempotent_and_rebuilds_from_scratch(demo):
    root, spec = demo
    assert apply(spec, root, log=_quiet) == "up-to-date"
    import shutil

    shutil.rmtree(spec.dest)
    assert apply(spec, root, log=_quiet) == "built"
    assert "return 10" in (spec.dest / "pkg/mod.py").read_text()
    assert "return 20" in (spec.dest / "pkg/mod.py").read_text()
    assert apply(spec, root, log=_quiet) == "up-to-date"


def test_check_and_diff_show_only_the_series(demo):
    root, spec = demo
    check(spec, root, log=_quiet)
    d = diff(spec, root)
    assert "-    return 1\n+    return 10" in d and "+    return 20" in d
    assert "README" not in d


def test_patch_that_no_longer_applies_names_patch_and_leaves_tree(demo):
    root, spec = demo
    # Upstream moves on: the first patch's context is gone.
    (root / "upstream_src" / "pkg" / "mod.py").write_text(
        "def f():\n    return 'changed'\n\n\ndef g():\n    return 2\n"
    )
    before = (spec.dest / "pkg/mod.py").read_text()
    with pytest.raises(PatchApplyError) as err:
        check(spec, root, log=_quiet)
    assert err.value.patch.startswith("0001-first")
    assert "pkg/mod.py" in str(err.value)
    # apply refuses the same way and the existing tree is untouched
    with pytest.raises(PatchApplyError):
        apply(spec, root, log=_quiet)
    assert (spec.dest / "pkg/mod.py").read_text() == before
    assert not list(spec.dest.parent.glob(".demo.vaml-*"))  # no scratch dirs left


def test_local_edits_are_not_overwritten(demo):
    root, spec = demo
    (spec.dest / "pkg/mod.py").write_text("local work\n")
    (spec.patch_dir / "series").write_text((spec.patch_dir / "series").read_text() + "# touched\n")
    with pytest.raises(LocalEditsError, match="uncommitted"):
        apply(spec, root, log=_quiet)
    assert (spec.dest / "pkg/mod.py").read_text() == "local work\n"
    apply(spec, root, force=True, log=_quiet)
    assert "return 10" in (spec.dest / "pkg/mod.py").read_text()


def test_extra_commit_counts_as_local_edit(demo):
    root, spec = demo
    commit_edit(spec.dest, "README", "demo", "DEMO", "third")
    assert "commit not in the series" in status(spec)
    (spec.patch_dir / "series").write_text((spec.patch_dir / "series").read_text() + "# touched\n")
    with pytest.raises(LocalEditsError, match="third"):
        apply(spec, root, log=_quiet)


def test_refresh_refuses_uncommitted_edits(demo):
    root, spec = demo
    (spec.dest / "README").write_text("dirty\n")
    with pytest.raises(LocalEditsError):
        refresh(spec, root, log=_quiet)


def test_bad_specs(tmp_path):
    root = make_local_repo(tmp_path)
    with pytest.raises(SpecError, match="no upstream named 'nope'"):
        load_spec(root, "nope")
    (root / "patches/demo/series").write_text("missing.patch\n")
    with pytest.raises(SpecError, match="missing.patch does not exist"):
        load_spec(root, "demo").series()
    (root / "patches/demo/upstream.toml").write_text('kind = "svn"\ndest = "x"\n')
    with pytest.raises(SpecError, match="kind"):
        load_spec(root, "demo")


# ---------------------------------------------------------------- pypi-sdist kind
def make_sdist(where: Path, name="toypkg", version="1.0") -> Path:
    top = where / f"{name}-{version}"
    (top / name).mkdir(parents=True)
    (top / name / "__init__.py").write_text("VALUE = 1\n")
    (top / "setup.py").write_text(
        f"from setuptools import setup\nsetup(name='{name}', version='{version}', packages=['{name}'])\n"
    )
    (top / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    index = where / "index" / name
    index.mkdir(parents=True)
    archive = index / f"{name}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(top, arcname=top.name)
    (index / "index.html").write_text(f'<a href="{archive.name}">{archive.name}</a>\n')
    return archive


def sdist_repo(tmp_path, sha):
    root = tmp_path / "repo"
    pdir = root / "patches" / "toy"
    pdir.mkdir(parents=True)
    (root / "vaml_ext").mkdir()
    (pdir / "upstream.toml").write_text(
        textwrap.dedent(f"""
        kind = "pypi-sdist"
        package = "toypkg"
        version = "1.0"
        sha256 = "{sha}"
        dest = "third_party/toy"
    """)
    )
    (pdir / "series").write_text("")
    return root


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    archive = make_sdist(tmp_path / "srv")
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "srv" / "index").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("VAML_PATCH_CACHE", str(tmp_path / "cache"))
    return archive


def test_sdist_download_verify_unpack(tmp_path, local_index):
    sha = hashlib.sha256(local_index.read_bytes()).hexdigest()
    root = sdist_repo(tmp_path, sha)
    spec = load_spec(root, "toy")
    assert apply(spec, root, log=_quiet) == "built"
    assert (spec.dest / "toypkg" / "__init__.py").read_text() == "VALUE = 1\n"
    assert apply(spec, root, log=_quiet) == "up-to-date"


def test_sdist_hash_mismatch_is_refused(tmp_path, local_index):
    root = sdist_repo(tmp_path, "0" * 64)
    spec = load_spec(root, "toy")
    with pytest.raises(HashMismatchError, match="does not match the pinned"):
        apply(spec, root, log=_quiet)
    assert not spec.dest.exists()


def test_registry_unreachable(tmp_path, monkeypatch):
    root = sdist_repo(tmp_path, "0" * 64)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("VAML_PATCH_CACHE", str(tmp_path / "cache"))
    spec = load_spec(root, "toy")
    with pytest.raises(FetchError, match="reachable"):
        apply(spec, root, log=_quiet)


def test_cli_exit_codes(tmp_path, capsys):
    root = make_local_repo(tmp_path)
    assert cli_main(["--repo", str(root), "apply", "demo"]) == 0
    assert cli_main(["--repo", str(root), "check"]) == 0
    assert cli_main(["--repo", str(root), "apply", "nope"]) == 2
    assert "no upstream named 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- the real series
def test_real_mbrl_series_applies(repo_root):
    """`vaml-patch check` on the shipped series (uses the cached, verified sdist)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vaml_ext.patching", "--repo", str(repo_root), "check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    # every series under patches/ (the paper base's mbrl-lib-dev3 included), every patch of it
    for series in sorted((repo_root / "patches").glob("*/series")):
        n = len(load_spec(repo_root, series.parent.name).series())
        assert f"{series.parent.name}: all {n} patches apply cleanly" in proc.stderr, series.parent.name


def test_every_patch_has_a_why_header(repo_root):
    for series in (repo_root / "patches").glob("*/series"):
        spec = load_spec(repo_root, series.parent.name)
        for name in spec.series():
            header = (spec.patch_dir / name).read_text().split("\n---\n")[0]
            assert "Why:" in header, f"{name} has no 'Why:' header"
            assert "Upstreamable:" in header or series.parent.name != "mbrl-lib", name
