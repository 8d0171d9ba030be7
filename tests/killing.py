"""The kill trials of the resume tests: a run started as a subprocess is ``kill -9``'d once it
has written a checkpoint (or whatever ``ready`` waits for), then the test restarts it.

    seed, rng = kill_seed()                      # random kill times, replayable
    rc = sigkill_when(proc, lambda: ckpt.is_file(), delay=rng.uniform(0, 3))
"""

import os
import random
import signal
import sys
import time
from typing import Callable, Tuple


def kill_seed() -> Tuple[int, random.Random]:
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
