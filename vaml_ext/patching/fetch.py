"""Obtaining a pristine upstream tree: a pinned sdist from the package index, or a local dir."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from vaml_ext.patching.errors import FetchError, HashMismatchError, SpecError
from vaml_ext.patching.spec import UpstreamSpec

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".git", ".pytest_cache")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir(repo_root: Path) -> Path:
    return Path(os.environ.get("VAML_PATCH_CACHE", repo_root / "third_party" / ".cache"))


def fetch_sdist(spec: UpstreamSpec, repo_root: Path, log=print) -> Path:
    """Return the path of the verified sdist, downloading it with pip if not cached.

    The archive must match the pinned sha256; a cached file that does not is discarded
    and downloaded again once, and a fresh download that does not is an error.
    """
    cdir = cache_dir(repo_root)
    cdir.mkdir(parents=True, exist_ok=True)
    for cached in _candidates(cdir, spec):
        if sha256_of(cached) == spec.sha256:
            return cached
        log(f"vaml-patch: cached {cached.name} does not match the pinned sha256; downloading again")
        cached.unlink()

    with tempfile.TemporaryDirectory(dir=cdir) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "-d",
            tmp,
            f"{spec.package}=={spec.version}",
        ]
        log(f"vaml-patch: downloading {spec.package}=={spec.version} (sdist) from the package index")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
        if proc.returncode != 0 or not files:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
            raise FetchError(
                f"could not download {spec.package}=={spec.version} from the package index "
                f"(pip exit {proc.returncode}). Is the registry reachable?\n{tail}"
            )
        got = files[0]
        digest = sha256_of(got)
        if digest != spec.sha256:
            raise HashMismatchError(
                f"{got.name}: sha256 {digest} does not match the pinned {spec.sha256} "
                f"in {spec.patch_dir / 'upstream.toml'}. The archive was not used. If upstream "
                "re-published the file, review the difference before updating the pin."
            )
        final = cdir / got.name
        shutil.move(str(got), final)
        return final


def _candidates(cdir: Path, spec: UpstreamSpec):
    names = [spec.filename] if spec.filename else []
    base = f"{spec.package}-{spec.version}"
    names += [base + ext for ext in (".tar.gz", ".zip", ".tar.bz2")]
    return [cdir / n for n in names if (cdir / n).is_file()]


def unpack(archive: Path, dest: Path, strip: int) -> None:
    """Unpack ``archive`` into the (empty) directory ``dest`` dropping ``strip`` leading dirs."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            members = [(m.filename, m) for m in zf.infolist() if not m.is_dir()]
            for name, m in members:
                out = _stripped(dest, name, strip)
                if out is None:
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return
    with tarfile.open(archive) as tf:
        for ti in tf.getmembers():
            if not ti.isfile():
                continue
            out = _stripped(dest, ti.name, strip)
            if out is None:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            member = tf.extractfile(ti)
            assert member is not None
            with member, open(out, "wb") as dst:
                shutil.copyfileobj(member, dst)
            if ti.mode & 0o111:
                out.chmod(0o755)


def _stripped(dest: Path, name: str, strip: int):
    parts = Path(name).parts[strip:]
    if not parts or ".." in parts or Path(name).is_absolute():
        return None
    if any(p.endswith(".egg-info") for p in parts):
        return None  # build metadata, rewritten by every `pip install -e`; not source
    return dest.joinpath(*parts)


def materialize(spec: UpstreamSpec, repo_root: Path, into: Path, log=print) -> None:
    """Write the pristine upstream tree of ``spec`` into the empty directory ``into``."""
    if spec.kind == "pypi-sdist":
        unpack(fetch_sdist(spec, repo_root, log=log), into, spec.strip_components)
    elif spec.kind == "local":
        if spec.source is None or not spec.source.is_dir():
            raise SpecError(f"local upstream {spec.source} is not a directory")
        shutil.copytree(spec.source, into, ignore=_IGNORE, dirs_exist_ok=True)
    else:  # pragma: no cover - load_spec validates kind
        raise SpecError(f"unknown kind {spec.kind}")
