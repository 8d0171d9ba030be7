"""Generic patch-series tool (``vaml-patch``): pinned upstream + ordered patches -> tree."""

from vaml_ext.patching.core import apply, check, diff, refresh, status
from vaml_ext.patching.errors import (
    FetchError,
    HashMismatchError,
    LocalEditsError,
    PatchApplyError,
    PatchToolError,
    SpecError,
)
from vaml_ext.patching.spec import UpstreamSpec, list_specs, load_spec

__all__ = [
    "FetchError",
    "HashMismatchError",
    "LocalEditsError",
    "PatchApplyError",
    "PatchToolError",
    "SpecError",
    "UpstreamSpec",
    "apply",
    "check",
    "diff",
    "list_specs",
    "load_spec",
    "refresh",
    "status",
]
