"""Several seeds of the SLBO port in one process, in lockstep, exact per seed (issue 27).

Each seed runs the port's own stage loop (``slbo.main.main``, unchanged) in its own thread,
but only one thread runs at a time (a baton passed in seed order), so the seeds behave as
if each had the process to itself:

* **process-global state is swapped with the baton**: NumPy's, Python's and torch's
  global generators, the per-seed flags (``FLAGS.seed``, ``FLAGS.log_dir``, the frozen
  bit) and the ``slbo`` logger's handlers (each seed logs to its own ``log.txt``);
* **the batching points** are the port's value fit (``TRPO.train_vf``) and its virtual
  rollouts (``Runner.run`` on a ``VirtualEnv``): there a seed's thread makes its random
  draws (in its own state, in the port's order), hands the request over and parks
  (:meth:`SeedScheduler.submit`). When every live seed is parked or finished, the
  scheduler runs each kind's requests through the batched kernel
  (:mod:`vaml_ext.slbo.batched.kernels`) and the threads resume, in seed order, each
  until its next request. A seed whose control flow differs (another kind of request)
  is served all the same: batching never changes what a seed computes;
* **a seed that fails** (a NaN assertion of the port, any exception) is retired: its
  thread ends with the exception recorded, the others go on bit-identical.

Everything else -- model updates, TRPO steps, evaluations, checkpoints, ``progress.csv``
-- is the port's code in the seed's thread, so each seed writes its run directory exactly
as a one-seed run does and resumes from its own checkpoint.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: FLAGS attributes that differ between the seeds of one batch
SEED_FLAGS = ("seed", "log_dir", "commit")

_local = threading.local()


def current() -> SeedScheduler | None:
    """The scheduler of the calling seed thread, or None outside one."""
    return getattr(_local, "scheduler", None)


@dataclass
class _Seed:
    index: int
    seed: int
    flags: dict  # SEED_FLAGS values while the seed is not running
    fn: Callable[[], Any]
    np_state: Any = None
    py_state: Any = None
    torch_state: Any = None
    frozen: bool = False
    handlers: list = field(default_factory=list)
    request: tuple | None = None  # (kind, payload) while parked
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    error_text: str = ""
    thread: threading.Thread | None = None


class SeedScheduler:
    """Run ``fns[k]()`` for seed ``seeds[k]`` (each the port's stage loop, usually) with the
    baton discipline above; ``executors[kind](payloads)`` serves a round's requests of that
    kind. ``run()`` returns each seed's result or exception."""

    def __init__(self, seeds: list[int], fns: list[Callable[[], Any]], seed_flags: list[dict], executors: dict):
        from slbo.utils.config import MetaFLAGS
        from slbo.utils.flags import FLAGS

        self._flags, self._meta = FLAGS, MetaFLAGS
        self.executors = executors
        self._logger = logging.getLogger("slbo")
        self._cond = threading.Condition()
        self._turn: int | None = None  # the seed index holding the baton; None: the scheduler
        self.seeds = [_Seed(i, s, dict(f), fn) for i, (s, fn, f) in enumerate(zip(seeds, fns, seed_flags))]
        self.rounds = 0
        self.served: dict[str, int] = {}

    # -- the seed side ----------------------------------------------------------------
    def submit(self, kind: str, payload: Any) -> None:
        """Called in a seed's thread at a batching point: park until the scheduler has
        served ``payload`` (the executor writes its results into it)."""
        me = self.seeds[_local.index]
        me.request = (kind, payload)
        self._park(me)

    def alone(self) -> bool:
        """Whether the calling seed is the only one not finished: then a batching point
        buys nothing, and the port's own code serves it (a batch of one is the port)."""
        return sum(not s.done for s in self.seeds) == 1

    def _park(self, me: _Seed) -> None:
        self._save(me)
        with self._cond:
            self._turn = None
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._turn == me.index)
        self._restore(me)

    def _thread_main(self, me: _Seed) -> None:
        _local.scheduler, _local.index = self, me.index
        with self._cond:
            self._cond.wait_for(lambda: self._turn == me.index)
        self._restore(me)
        try:
            me.result = me.fn()
        except BaseException as e:  # retire the seed; the others go on
            me.error, me.error_text = e, traceback.format_exc()
            self._logger.error("seed %d failed, retired from the batch:\n%s", me.seed, me.error_text)
        self._save(me)
        for h in me.handlers:  # the port leaves its handlers open; this seed is finished
            if getattr(h, "_slbo", False):
                h.close()
        me.done = True
        with self._cond:
            self._turn = None
            self._cond.notify_all()

    # -- process-global state ---------------------------------------------------------
    def _save(self, s: _Seed) -> None:
        s.np_state = np.random.get_state()
        s.py_state = random.getstate()
        s.torch_state = torch.get_rng_state()
        s.flags = {k: getattr(self._flags, k, None) for k in SEED_FLAGS}
        s.frozen = self._meta._frozen
        s.handlers = list(self._logger.handlers)

    def _restore(self, s: _Seed) -> None:
        if s.np_state is not None:
            np.random.set_state(s.np_state)
            random.setstate(s.py_state)
            torch.set_rng_state(s.torch_state)
        self._meta.set_frozen(False)
        for k, v in s.flags.items():
            setattr(self._flags, k, v)
        self._meta.set_frozen(s.frozen)
        self._logger.handlers = list(s.handlers)

    # -- the scheduler side -----------------------------------------------------------
    def _give(self, s: _Seed) -> None:
        with self._cond:
            self._turn = s.index
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._turn is None)

    def run(self) -> list[tuple[Any, BaseException | None]]:
        main_handlers = list(self._logger.handlers)
        for s in self.seeds:
            s.handlers = []
            s.thread = threading.Thread(target=self._thread_main, args=(s,), name=f"seed{s.seed}", daemon=True)
            s.thread.start()
        try:
            while True:
                live = [s for s in self.seeds if not s.done]
                if not live:
                    break
                for s in live:  # each live seed runs to its next request (or its end)
                    self._give(s)
                parked = [(s, s.request) for s in self.seeds if not s.done and s.request is not None]
                by_kind: dict[str, list] = {}
                for _, (kind, payload) in parked:
                    by_kind.setdefault(kind, []).append(payload)
                for kind, payloads in by_kind.items():
                    self.executors[kind](payloads)
                    self.served[kind] = self.served.get(kind, 0) + len(payloads)
                for s, _ in parked:
                    s.request = None
                self.rounds += 1
        finally:
            self._logger.handlers = main_handlers
        for s in self.seeds:
            if s.thread is not None:
                s.thread.join()
        return [(s.result, s.error) for s in self.seeds]
