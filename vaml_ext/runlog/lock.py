"""One writer per run directory: an exclusive ``flock`` on ``<run_dir>/.lock``.

    with RunLock(run_dir):          # raises RunInUse at once if another process holds it
        ...write the run...

* The lock is the kernel's (``fcntl.flock``): a holder that dies, even by ``SIGKILL``,
  releases it, so a dead holder never blocks a restart.
* ``lock.json`` beside it names the holder (pid, host, start time, cluster task id, the
  command). It is written under the lock and removed on a clean release, so finding one
  when the lock is taken means the previous holder died: a line says so
  ("previous holder pid X on host H ... gone; taking over").
* A second process on the same directory gets :class:`RunInUse` (naming the holder)
  without waiting -- except a cluster requeue of the *same* task (equal
  ``SLURM_JOB_ID``/array task), which waits up to ``requeue_wait_s`` for its old
  incarnation to exit.
* Re-entrant within a process (a sweep job locks, then runs the backend in-process), and
  inherited by a child the holder starts with :func:`child_env` (the backend subprocess).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from vaml_ext.runlog.atomic import atomic_write_text

LOCK_FILE = ".lock"
HOLDER_FILE = "lock.json"
PARENT_ENV = "VAML_RUNLOCK_HELD"  # run dir whose lock the parent process holds for this child

_HELD: dict[str, RunLock] = {}  # run dir (resolved) -> the lock this process holds on it


class RunInUse(RuntimeError):
    def __init__(self, run_dir, holder: dict | None):
        self.run_dir, self.holder = Path(run_dir), holder or {}
        super().__init__(
            f"{self.run_dir} is in use by {describe(self.holder)}; not starting a second writer "
            f"(wait for it to finish, or stop it: kill {self.holder.get('pid', '<pid>')})"
        )


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process (holder unknown)"
    task = f", task {holder['task']}" if holder.get("task") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started')}{task})"


def task_id() -> str | None:
    """The cluster task this process runs as (SLURM job / array task), if any."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    return None


def read_holder(run_dir) -> dict | None:
    try:
        return json.loads((Path(run_dir) / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None


def holder_if_locked(run_dir) -> dict | None:
    """The holder's record if some process (this one included) holds the lock now, else None."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    key = str(Path(run_dir).resolve())
    if key in _HELD:
        return read_holder(run_dir) or {"pid": os.getpid()}
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(run_dir) or {}
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return None


def child_env(run_dir, env: dict | None = None, more=()) -> dict:
    """Environment for a child process that runs inside this process's lock on ``run_dir``
    (and on each of ``more``: a batch of runs in one child)."""
    out = dict(os.environ if env is None else env)
    out[PARENT_ENV] = os.pathsep.join(str(Path(d).resolve()) for d in (run_dir, *more))
    return out


class RunLock:
    def __init__(self, run_dir, requeue_wait_s: float = 60.0, stream=None):
        self.run_dir = Path(run_dir)
        self.key = str(self.run_dir.resolve())
        self.requeue_wait_s = float(requeue_wait_s)
        self.stream = stream
        self._fd: int | None = None
        self._outer = False
        self.took_over: dict | None = None  # the dead holder's record, when taken over

    def _say(self, msg: str) -> None:
        print(f"[runlog] {msg}", file=self.stream or sys.stderr, flush=True)

    def acquire(self) -> RunLock:
        if self.key in _HELD:  # this process holds it already (the sweep job)
            return self
        if self.key in os.environ.get(PARENT_ENV, "").split(os.pathsep):
            h = read_holder(self.run_dir)
            if h and h.get("pid") == os.getppid() and h.get("host") == socket.gethostname():
                return self  # our parent holds it for us
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(self.run_dir)
                mine = task_id()
                if mine is None or not holder or holder.get("task") != mine:
                    os.close(fd)
                    raise RunInUse(self.run_dir, holder) from None
                if deadline is None:  # a requeue of this very task: its old incarnation is exiting
                    deadline = time.monotonic() + self.requeue_wait_s
                    self._say(
                        f"{self.run_dir}: held by an earlier run of this task ({describe(holder)}); "
                        f"waiting up to {self.requeue_wait_s:.0f} s for it to exit"
                    )
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RunInUse(self.run_dir, holder) from None
                time.sleep(0.2)
        old = read_holder(self.run_dir)
        if old is not None and old.get("pid") != os.getpid():
            self.took_over = old
            self._say(f"{self.run_dir}: previous holder {describe(old)} gone without releasing the run; taking over")
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "task": task_id(),
            "argv": sys.argv[:8],
        }
        try:
            atomic_write_text(self.run_dir / HOLDER_FILE, json.dumps(info, indent=1) + "\n")
        except Exception:
            os.close(fd)
            raise
        self._fd, self._outer = fd, True
        _HELD[self.key] = self
        return self

    def release(self) -> None:
        if not self._outer:
            return
        self._outer = False
        _HELD.pop(self.key, None)
        try:
            (self.run_dir / HOLDER_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
