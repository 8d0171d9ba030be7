"""Errors of the patch tool. Every one carries a message that says what to do next."""


class PatchToolError(Exception):
    """Base class: the CLI prints ``str(err)`` and exits with :attr:`exit_code`."""

    exit_code = 2


class SpecError(PatchToolError):
    """``patches/<name>/upstream.toml`` or ``series`` is missing or malformed."""


class FetchError(PatchToolError):
    """The upstream archive could not be downloaded (registry unreachable, no such version)."""

    exit_code = 3


class HashMismatchError(PatchToolError):
    """The downloaded archive's sha256 differs from the pinned one."""

    exit_code = 4


class PatchApplyError(PatchToolError):
    """A patch in the series does not apply strictly. Names the patch and the failing hunk."""

    exit_code = 5

    def __init__(self, patch: str, detail: str):
        self.patch = patch
        self.detail = detail
        super().__init__(
            f"patch {patch!r} does not apply to the pristine upstream + earlier patches:\n"
            f"{detail}\nNothing was changed: the build tree was discarded. Rebase the patch "
            f"(edit the tree, commit, `vaml-patch refresh`) or fix the series."
        )


class LocalEditsError(PatchToolError):
    """The destination tree has edits that ``apply`` would overwrite."""

    exit_code = 6
