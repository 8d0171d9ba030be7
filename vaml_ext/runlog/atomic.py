"""File writes that never leave a half-written file behind.

* :func:`atomic_write_text` / :func:`atomic_save`: write a temporary file beside the
  target, ``fsync`` it, then ``os.replace`` it over the target. A crash or a failed write
  (a full disk: ``ENOSPC``, or any ``OSError``) leaves the previous file as it was.
* :func:`append_line`: append to a text file (``returns.csv``); if the write fails the file
  is cut back to its previous length, so no torn row remains.

Every failure is raised as :class:`RunWriteError`, naming the file and the OS error; the
run is meant to stop there (its last checkpoint and rows are intact).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class RunWriteError(RuntimeError):
    """A run file could not be written; the previous version of the file is intact."""

    def __init__(self, path, err: BaseException):
        self.path = Path(path)
        self.err = err
        super().__init__(
            f"could not write {self.path}: {err} -- the previous version of the file is kept; "
            "free space (or fix the error) and re-run the same command to resume"
        )


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:
        pass


def write_synced(path, write: Callable[[IO[Any]], Any], mode: str = "wb") -> Path:
    """``write(f)`` into ``<path>.tmp`` and fsync it; returns that file (the caller renames
    it). On failure the temporary file is removed and ``RunWriteError`` names ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, newline=None if "b" in mode else "") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _discard(tmp)
        raise RunWriteError(path, e) from e
    return tmp


def atomic_write(path, write: Callable[[IO[Any]], Any], mode: str = "wb") -> None:
    """``write(f)`` into ``<path>.tmp``, fsync, then rename over ``path``."""
    tmp = write_synced(path, write, mode)
    try:
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise RunWriteError(path, e) from e


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_save(obj, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a checkpoint)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def append_line(path, text: str) -> None:
    """Append ``text`` (one or more complete lines) and fsync; on failure the file is cut
    back to its previous size."""
    path = Path(path)
    try:
        f = open(path, "a", newline="")
    except OSError as e:
        raise RunWriteError(path, e) from e
    with f:
        start = f.tell()
        try:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            try:
                f.truncate(start)
            except OSError:
                pass
            raise RunWriteError(path, e) from e
