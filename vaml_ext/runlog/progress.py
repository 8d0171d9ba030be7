"""Progress output for long runs: env steps, latest return and ETA, plus a summary line.

On a terminal it is a tqdm bar; otherwise (CI logs, joblib workers, SLURM) it prints a
plain line at most every ``min_interval`` seconds, so logs stay readable.

    prog = RunProgress(total_steps=5000, desc="fig3/hopper/ma_l1/seed0", initial=0)
    prog.update(env_steps=1000, ret=312.5)
    prog.close(final_return=812.0)   # prints the end-of-run summary
"""

from __future__ import annotations

import math
import sys
import time


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class RunProgress:
    def __init__(
        self,
        total_steps: int,
        desc: str = "",
        initial: int = 0,
        stream=None,
        min_interval: float = 10.0,
        use_tqdm: bool | None = None,
    ):
        self.total = max(1, int(total_steps))
        self.desc = desc
        self.stream = stream or sys.stderr
        self.steps = int(initial)
        self._start_steps = int(initial)
        self.last_return = float("nan")
        self.best_return = float("-inf")
        self.n_evals = 0
        self.t0 = time.perf_counter()
        self.min_interval = min_interval
        self._last_print = float("-inf")
        tty = getattr(self.stream, "isatty", lambda: False)()
        self._bar = None
        if use_tqdm if use_tqdm is not None else tty:
            try:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=self.total, initial=self.steps, desc=desc, unit="step", file=self.stream, dynamic_ncols=True
                )
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self._bar = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self) -> float:
        done = self.steps - self._start_steps
        if done <= 0:
            return float("nan")
        return self.elapsed / done * (self.total - self.steps)

    def update(self, env_steps: int, ret: float | None = None) -> None:
        env_steps = int(env_steps)
        if ret is not None:
            self.last_return = float(ret)
            self.best_return = max(self.best_return, float(ret))
            self.n_evals += 1
        if self._bar is not None:
            self._bar.update(max(0, env_steps - self.steps))
            self.steps = env_steps
            if ret is not None:
                self._bar.set_postfix(ret=f"{self.last_return:.1f}", best=f"{self.best_return:.1f}")
            return
        self.steps = env_steps
        now = time.perf_counter()
        if ret is not None or now - self._last_print >= self.min_interval or env_steps >= self.total:
            self._last_print = now
            pct = 100.0 * min(self.steps, self.total) / self.total
            print(
                f"[{self.desc}] {self.steps}/{self.total} env steps ({pct:.0f}%) "
                f"return {self.last_return:.1f} (best {self.best_return:.1f}) "
                f"elapsed {_fmt_time(self.elapsed)} ETA {_fmt_time(self.eta())}",
                file=self.stream,
                flush=True,
            )

    def close(self, final_return: float | None = None, extra: str = "", announce: bool = True) -> str:
        """End the progress bar; print (unless ``announce=False``) and return the summary line."""
        if self._bar is not None:
            self._bar.close()
        fin = self.last_return if final_return is None else float(final_return)
        line = (
            f"[{self.desc}] done: {self.steps} env steps in {_fmt_time(self.elapsed)}, "
            f"{self.n_evals} evaluations, final return {fin:.1f}, best {self.best_return:.1f}"
            + (f", {extra}" if extra else "")
        )
        if announce:
            print(line, file=self.stream, flush=True)
        return line
