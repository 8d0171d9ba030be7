"""Reading ``patches/<name>/upstream.toml`` and ``patches/<name>/series``.

``upstream.toml`` keys:

* ``name`` -- display name (e.g. ``"mbrl-lib"``).
* ``kind`` -- ``"pypi-sdist"`` (download a source archive from the package index with
  pip, verify ``sha256``) or ``"local"`` (a directory of this repo is the upstream, as
  for the SLBO port under ``third_party/slbo``).
* ``package``, ``version``, ``sha256``, ``filename`` -- for ``pypi-sdist``.
* ``source`` -- for ``local``: path relative to the repo root.
* ``dest`` -- where the patched tree is built (git-ignored build output), relative to
  the repo root.
* ``strip_components`` -- leading path components to drop when unpacking (default 1
  for sdists, whose files live under ``<package>-<version>/``).

``series``: one patch file name per line, applied in order; ``#`` starts a comment.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from vaml_ext.patching.errors import SpecError

KINDS = ("pypi-sdist", "local")


@dataclasses.dataclass(frozen=True)
class UpstreamSpec:
    key: str  # the directory name under patches/
    name: str
    kind: str
    dest: Path
    patch_dir: Path
    package: str | None = None
    version: str | None = None
    sha256: str | None = None
    filename: str | None = None
    source: Path | None = None
    strip_components: int = 1

    @property
    def series_file(self) -> Path:
        return self.patch_dir / "series"

    def series(self) -> list[str]:
        if not self.series_file.is_file():
            raise SpecError(f"{self.series_file} is missing (an empty file means no patches)")
        names = []
        for lineno, raw in enumerate(self.series_file.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "/" in line or not line.endswith(".patch"):
                raise SpecError(f"{self.series_file}:{lineno}: {line!r} is not a patch file name")
            if not (self.patch_dir / line).is_file():
                raise SpecError(f"{self.series_file}:{lineno}: {line} does not exist in {self.patch_dir}")
            names.append(line)
        if len(set(names)) != len(names):
            raise SpecError(f"{self.series_file}: a patch is listed twice")
        return names

    def describe(self) -> str:
        if self.kind == "pypi-sdist":
            return f"{self.package}=={self.version} (sdist sha256 {(self.sha256 or '')[:12]}...)"
        return f"local tree {self.source}"


def load_spec(repo_root: Path, key: str) -> UpstreamSpec:
    patch_dir = repo_root / "patches" / key
    toml_path = patch_dir / "upstream.toml"
    if not toml_path.is_file():
        known = list_specs(repo_root)
        raise SpecError(f"no upstream named {key!r}: {toml_path} does not exist. Known: {', '.join(known) or 'none'}")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{toml_path}: {e}") from None
    kind = data.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{toml_path}: kind={kind!r}, expected one of {KINDS}")
    required = ["dest"] + (["package", "version", "sha256"] if kind == "pypi-sdist" else ["source"])
    missing = [k for k in required if not data.get(k)]
    if missing:
        raise SpecError(f"{toml_path}: missing keys {missing}")
    sha = data.get("sha256")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise SpecError(f"{toml_path}: sha256 must be 64 lowercase hex digits")
    return UpstreamSpec(
        key=key,
        name=data.get("name", key),
        kind=kind,
        dest=(repo_root / data["dest"]).resolve(),
        patch_dir=patch_dir,
        package=data.get("package"),
        version=data.get("version"),
        sha256=sha,
        filename=data.get("filename"),
        source=(repo_root / data["source"]).resolve() if data.get("source") else None,
        strip_components=int(data.get("strip_components", 1 if kind == "pypi-sdist" else 0)),
    )


def list_specs(repo_root: Path) -> list[str]:
    base = repo_root / "patches"
    if not base.is_dir():
        return []
    return sorted(p.parent.name for p in base.glob("*/upstream.toml"))
