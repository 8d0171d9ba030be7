"""Rotated checkpoints with recovery: ``ckpt/latest.pt`` and the one before it,
``ckpt/previous.pt``.

* :meth:`CheckpointStore.save` writes ``latest.pt.tmp`` (fsync), renames the current
  ``latest.pt`` to ``previous.pt`` and the new file to ``latest.pt``. A failed write (full
  disk) raises ``RunWriteError`` and changes nothing; a kill between the two renames leaves
  ``previous.pt`` only, which :meth:`load` then uses.
* :meth:`CheckpointStore.load` tries ``latest.pt``, then ``previous.pt``. A file that fails
  to load is named with its error and set aside (renamed ``<name>.unreadable-<time>``, never
  deleted) once an older one has loaded. If none loads, :class:`NoUsableCheckpoint` names
  the files and the caller's explicit way to start the run over; nothing is renamed, so
  running again without that choice stops again -- a run never restarts silently.
* :meth:`CheckpointStore.set_aside_all` (the start-over choice) renames every checkpoint
  (``<name>.discarded-<time>``) so a fresh run cannot fall back to another run's state.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaml_ext.runlog.atomic import RunWriteError, write_synced

LATEST = "latest.pt"
PREVIOUS = "previous.pt"


def flat_config(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        else:
            out[key] = v
    return out


class CheckpointOfAnotherRun(ValueError):
    """A run directory holds a checkpoint written with another configuration."""


def check_checkpoint_config(
    path, saved: dict, current: dict, remedy: str, ignore: Callable[[str], bool] = lambda k: False
) -> None:
    """Raise :class:`CheckpointOfAnotherRun` naming the keys (up to 8, ``old -> new``) where
    the configuration ``saved`` with checkpoint ``path`` differs from ``current``; keys for
    which ``ignore(key)`` is true may differ. ``remedy`` says how to go on: the one check of
    every run kind (MBPO, gridworld), so each says the same thing the same way."""
    old, new = flat_config(saved), flat_config(current)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not ignore(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:8])
        raise CheckpointOfAnotherRun(
            f"checkpoint {path} was written by a different run ({shown}{', ...' if len(diff) > 8 else ''}); "
            f"the checkpoint is kept as it is. {remedy}"
        )


class NoUsableCheckpoint(RuntimeError):
    def __init__(self, failures: list[tuple[Path, BaseException]], restart_hint: str):
        self.failures = failures
        lines = "; ".join(f"{p}: {_short(e)}" for p, e in failures)
        super().__init__(
            f"no checkpoint of this run can be loaded ({lines}). The run is not restarted on its "
            f"own; to start it over from scratch (the unreadable files are kept, renamed), "
            f"{restart_hint}"
        )


def _short(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:160]}"


def _torch_load(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


class CheckpointStore:
    def __init__(self, ckpt_dir, restart_hint: str = "re-run with the backend's restart option", stream=None):
        self.dir = Path(ckpt_dir)
        self.restart_hint = restart_hint
        self.stream = stream

    @property
    def latest(self) -> Path:
        return self.dir / LATEST

    @property
    def previous(self) -> Path:
        return self.dir / PREVIOUS

    def _say(self, msg: str) -> None:
        print(f"[runlog] {msg}", file=self.stream or sys.stderr, flush=True)

    def exists(self) -> bool:
        return self.latest.is_file() or self.previous.is_file()

    def save(self, state: Any, save: Callable[[Any, Any], Any] | None = None) -> Path:
        """Write ``state`` as the new ``latest.pt`` (``save(state, file)``, default
        ``torch.save``), keeping the one before as ``previous.pt``."""
        if save is None:
            import torch

            save = torch.save
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = write_synced(self.latest, lambda f: save(state, f))  # latest.pt.tmp, complete, or RunWriteError
        try:
            if self.latest.is_file():
                os.replace(self.latest, self.previous)
            os.replace(tmp, self.latest)
        except OSError as e:
            raise RunWriteError(self.latest, e) from e
        return self.latest

    def load(self, load: Callable[[Path], Any] = _torch_load) -> tuple[Path | None, Any]:
        """``(path, state)`` of the newest checkpoint that loads, ``(None, None)`` if there is
        none; raises :class:`NoUsableCheckpoint` if there are some and none loads."""
        failures: list[tuple[Path, BaseException]] = []
        for path in (self.latest, self.previous):
            if not path.is_file():
                continue
            try:
                state = load(path)
            except Exception as e:  # a truncated or damaged file: torch raises several types
                failures.append((path, e))
                continue
            for bad, err in failures:
                aside = self._aside(bad, "unreadable")
                self._say(
                    f"checkpoint {bad} could not be loaded ({_short(err)}); set aside as "
                    f"{aside.name}; resuming from {path.name}"
                )
            return path, state
        if failures:
            raise NoUsableCheckpoint(failures, self.restart_hint)
        return None, None

    def set_aside_all(self, why: str = "discarded") -> list[Path]:
        out = [self._aside(p, why) for p in (self.latest, self.previous) if p.is_file()]
        if out:
            self._say(f"starting over: earlier checkpoints kept as {', '.join(str(p) for p in out)}")
        return out

    def _aside(self, path: Path, why: str) -> Path:
        dst = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%dT%H%M%S')}")
        n = 1
        while dst.exists():
            dst = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%dT%H%M%S')}-{n}")
            n += 1
        os.replace(path, dst)
        return dst
