"""apply / check / diff / refresh / status for one upstream + patch series.

The patched tree (``dest``) is a git repository: commit 1 is the pristine upstream
(tagged ``upstream``), then one commit per patch, made by ``git am`` -- strictly, no
fuzz, no 3-way merge. That makes ``diff`` a plain ``git diff upstream`` and
``refresh`` a plain ``git format-patch upstream..HEAD`` (the conda-forge feedstock
workflow: edit the tree, commit one concern per commit, regenerate the series).

A build always happens in a scratch directory next to ``dest`` and replaces ``dest``
only once every patch applied, so a failure never leaves a half-patched tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from vaml_ext.patching.errors import LocalEditsError, PatchApplyError, PatchToolError
from vaml_ext.patching.fetch import materialize
from vaml_ext.patching.spec import UpstreamSpec

STAMP = "vaml-patch.json"  # kept inside dest/.git so it never shows as a tree change
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "vaml-patch",
    "GIT_AUTHOR_EMAIL": "vaml-patch@localhost",
    "GIT_COMMITTER_NAME": "vaml-patch",
    "GIT_COMMITTER_EMAIL": "vaml-patch@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

Log = Callable[[str], None]


def git(cwd: Path, *args: str, check: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **_GIT_ENV, **(env_extra or {})}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    proc = subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    if check and proc.returncode != 0:
        raise PatchToolError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr.strip()}")
    return proc


def series_digest(spec: UpstreamSpec) -> str:
    h = hashlib.sha256()
    h.update((spec.describe() + "\n").encode())
    if spec.kind == "local" and spec.source is not None and spec.source.is_dir():
        # A local upstream (e.g. the SLBO port) changes in place: its content is part
        # of the state, so editing it makes the built tree stale.
        for f in sorted(spec.source.rglob("*")):
            rel = f.relative_to(spec.source)
            if (
                f.is_file()
                and not any(p in ("__pycache__", ".git") or p.endswith(".egg-info") for p in rel.parts)
                and f.suffix != ".pyc"
            ):
                h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    for name in spec.series():
        h.update(name.encode() + b"\0" + (spec.patch_dir / name).read_bytes() + b"\0")
    return h.hexdigest()


def _read_stamp(dest: Path) -> dict | None:
    try:
        return json.loads((dest / ".git" / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _write_stamp(dest: Path, spec: UpstreamSpec) -> None:
    head = git(dest, "rev-parse", "HEAD").stdout.strip()
    (dest / ".git" / STAMP).write_text(json.dumps({"digest": series_digest(spec), "head": head}))


def local_edits(dest: Path) -> list[str]:
    """Human-readable list of edits in ``dest`` not produced by the recorded series."""
    if not (dest / ".git").is_dir():
        return [f"{dest} exists but is not a vaml-patch tree (no .git)"]
    out = []
    status = git(dest, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    status = [s for s in status if not _ignorable(s[3:])]
    out += [f"uncommitted: {s}" for s in status]
    stamp = _read_stamp(dest)
    head = git(dest, "rev-parse", "HEAD", check=False).stdout.strip()
    if stamp and stamp.get("head") != head:
        log = git(dest, "log", "--format=%h %s", f"{stamp.get('head')}..HEAD", check=False).stdout
        out += [f"commit not in the series: {ln}" for ln in log.splitlines()] or [
            "HEAD moved away from the applied series"
        ]
    return out


def _ignorable(path: str) -> bool:
    p = path.strip().strip('"')
    return "__pycache__" in p or p.endswith(".pyc") or ".egg-info" in p


def build(spec: UpstreamSpec, repo_root: Path, into: Path, log: Log = print) -> None:
    """Materialise upstream in ``into`` as a git repo and apply the series strictly."""
    into.mkdir(parents=True)
    materialize(spec, repo_root, into, log=log)
    git(into, "init", "-q", "-b", "main")
    (into / ".git" / "info").mkdir(exist_ok=True)
    (into / ".git" / "info" / "exclude").write_text("__pycache__/\n*.pyc\n*.egg-info/\n")
    git(into, "add", "-A", "-f")
    git(into, "commit", "-q", "--allow-empty", "-m", f"upstream: {spec.describe()}")
    git(into, "tag", "upstream")
    for name in spec.series():
        proc = git(
            into,
            "am",
            "--quiet",
            "--keep-cr",
            "--no-3way",
            "--whitespace=nowarn",
            str(spec.patch_dir / name),
            check=False,
        )
        if proc.returncode != 0:
            detail = _hunk_detail(proc.stderr + proc.stdout)
            git(into, "am", "--abort", check=False)
            raise PatchApplyError(name, detail)
        log(f"vaml-patch: applied {name}")


def _hunk_detail(text: str) -> str:
    keep = [
        ln
        for ln in text.splitlines()
        if re.search(r"(patch failed|does not apply|error:|corrupt|already exists|No such file)", ln)
    ]
    return "\n".join("  " + ln.strip() for ln in (keep or text.strip().splitlines()[-5:]))


def _scratch(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.vaml-tmp-", dir=dest.parent))


def apply(spec: UpstreamSpec, repo_root: Path, force: bool = False, log: Log = print) -> str:
    """Build ``dest`` from upstream + series. Returns ``"up-to-date"`` or ``"built"``."""
    dest = spec.dest
    digest = series_digest(spec)
    if dest.exists():
        edits = local_edits(dest)
        stamp = _read_stamp(dest)
        if not edits and stamp and stamp.get("digest") == digest:
            log(f"vaml-patch: {spec.key}: {dest} is up to date ({len(spec.series())} patches)")
            return "up-to-date"
        if edits and not force:
            raise LocalEditsError(
                f"{dest} has local edits that `apply` would overwrite:\n"
                + "\n".join("  " + e for e in edits[:20])
                + "\nCommit them and run `vaml-patch refresh "
                + spec.key
                + "` to turn them into patches, or re-run with --force to discard them."
            )
    tmp = _scratch(dest)
    try:
        shutil.rmtree(tmp)
        build(spec, repo_root, tmp, log=log)
        _write_stamp(tmp, spec)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.vaml-old-{os.getpid()}")
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"vaml-patch: {spec.key}: built {dest} = {spec.describe()} + {len(spec.series())} patches")
    return "built"


def check(spec: UpstreamSpec, repo_root: Path, log: Log = print) -> None:
    """Dry run: build upstream + series in a temporary directory and discard it."""
    with tempfile.TemporaryDirectory(prefix=f"vaml-patch-check-{spec.key}-") as tmp:
        build(spec, repo_root, Path(tmp) / "tree", log=log)
    log(f"vaml-patch: {spec.key}: all {len(spec.series())} patches apply cleanly to {spec.describe()}")


def diff(spec: UpstreamSpec, repo_root: Path, stat: bool = False) -> str:
    """The whole change vs pristine upstream (built in a temp dir if ``dest`` is absent)."""
    args = ["diff", "--stat" if stat else "--no-color", "upstream", "HEAD"]
    if spec.dest.is_dir() and (spec.dest / ".git").is_dir():
        return git(spec.dest, *args).stdout
    with tempfile.TemporaryDirectory(prefix=f"vaml-patch-diff-{spec.key}-") as tmp:
        tree = Path(tmp) / "tree"
        build(spec, repo_root, tree, log=lambda _m: None)
        return git(tree, *args).stdout


def refresh(spec: UpstreamSpec, repo_root: Path, log: Log = print) -> list[str]:
    """Regenerate ``patches/<key>/*.patch`` and ``series`` from the commits in ``dest``.

    Each commit ``upstream..HEAD`` becomes one patch file (its message -- subject and
    body -- is the patch header). Uncommitted edits are refused.
    """
    dest = spec.dest
    if not (dest / ".git").is_dir():
        raise PatchToolError(f"{dest} is not a vaml-patch tree; run `vaml-patch apply {spec.key}` first")
    status = [
        s
        for s in git(dest, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
        if not _ignorable(s[3:])
    ]
    if status:
        raise LocalEditsError(
            f"{dest} has uncommitted edits; commit each concern separately first:\n"
            + "\n".join("  " + s for s in status[:20])
        )
    with tempfile.TemporaryDirectory() as tmp:
        git(
            dest,
            "format-patch",
            "-q",
            "--no-signature",
            "--zero-commit",
            "--no-stat",
            "--full-index",
            "-o",
            tmp,
            "upstream..HEAD",
        )
        new = sorted(Path(tmp).glob("*.patch"))
        old = spec.series() if spec.series_file.is_file() else []
        for name in old:
            (spec.patch_dir / name).unlink(missing_ok=True)
        names = []
        for p in new:
            (spec.patch_dir / p.name).write_text(_normalize_header(p.read_text()))
            names.append(p.name)
    header = (
        "# Applied in order by `vaml-patch apply "
        + spec.key
        + "`; regenerate with `vaml-patch refresh "
        + spec.key
        + "`.\n"
    )
    spec.series_file.write_text(header + "".join(n + "\n" for n in names))
    _write_stamp(dest, spec)
    log(f"vaml-patch: {spec.key}: wrote {len(names)} patches to {spec.patch_dir}")
    return names


def _normalize_header(text: str) -> str:
    """Fixed ``From:``/``Date:`` mail headers, so refreshing is reproducible whoever runs it."""
    head, sep, body = text.partition("\n\n")
    out, skip = [], False
    for line in head.splitlines():
        if skip and line[:1] in (" ", "\t"):
            continue  # folded continuation of a dropped header
        skip = line.startswith(("From: ", "Date: "))
        if line.startswith("From: "):
            out.append(f"From: {_GIT_ENV['GIT_AUTHOR_NAME']} <{_GIT_ENV['GIT_AUTHOR_EMAIL']}>")
        elif line.startswith("Date: "):
            out.append("Date: Sat, 1 Jan 2000 00:00:00 +0000")
        else:
            out.append(line)
    return "\n".join(out) + sep + body


def status(spec: UpstreamSpec) -> str:
    dest = spec.dest
    if not dest.exists():
        return "not built"
    edits = local_edits(dest)
    stamp = _read_stamp(dest)
    if edits:
        return "local edits:\n" + "\n".join("  " + e for e in edits)
    if not stamp or stamp.get("digest") != series_digest(spec):
        return "stale (series changed since the tree was built; run apply)"
    return "up to date"
