"""Helpers shared by the tests (one module; see tests/README.md).

* :func:`kill_seed`, :func:`sigkill_when` -- the kill trials of the resume tests: a run started
  as a subprocess is ``kill -9``'d once it has written a checkpoint (or whatever ``ready`` waits
  for), then the test restarts it::

      seed, rng = kill_seed()                      # random kill times, replayable
      rc = sigkill_when(proc, lambda: ckpt.is_file(), delay=rng.uniform(0, 3))

* :func:`lock_held_elsewhere` -- another process holding a run directory's ``RunLock``;
* :func:`load_exp_script` -- a script of ``exp/<group>/`` loaded as a module (they are scripts,
  not a package), for the tests that run them on tiny budgets or check their validation.
"""

import contextlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kill_seed() -> tuple[int, random.Random]:
    """The seed of a randomised kill trial and its generator: ``VAML_KILL_SEED`` replays a
    failure, otherwise a fresh seed, printed so a failing trial can be replayed."""
    seed = int(os.environ.get("VAML_KILL_SEED", random.SystemRandom().randrange(2**31)))
    print(f"kill-time seed {seed} (replay: VAML_KILL_SEED={seed})", file=sys.stderr)
    return seed, random.Random(seed)


def sigkill_when(proc, ready: Callable[[], bool], *, delay: float = 0.0, timeout: float = 300, group: bool = False):
    """Wait until ``ready()`` while ``proc`` runs, sleep ``delay`` s, then SIGKILL ``proc`` (its
    whole process group with ``group=True``: a run started with ``start_new_session``) and
    reap it. Fails the test when ``proc`` ends before ``ready()`` or ``timeout`` s pass; never
    leaves the process behind. Returns ``proc``'s exit status: ``-SIGKILL`` unless it ended
    during ``delay``."""
    kill = os.killpg if group else os.kill
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it was ready to be killed"
            assert time.monotonic() < deadline, f"the run was not ready to be killed within {timeout:.0f} s"
            time.sleep(0.05)
        time.sleep(delay)
        kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode


EXP = Path(__file__).resolve().parents[1] / "exp"


def load_exp_script(group: str, name: str):
    spec = importlib.util.spec_from_file_location(f"exp_{group}_{name}", EXP / group / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def lock_held_elsewhere(run_dir):
    """Yield a subprocess that holds ``run_dir``'s :class:`~vaml_ext.runlog.lock.RunLock`
    until the block ends (then it releases the lock and exits)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom vaml_ext.runlog.lock import RunLock\n"
            f"lock = RunLock({str(run_dir)!r}).acquire()\nprint('locked', flush=True)\nsys.stdin.read()\n"
            "lock.release()\n",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
