"""``make demo``: MBPO with MLE vs. value-aware (MA-L1) models, side by side.

Runs upstream's entry point (``python -m mbrl.examples.main``) of the *patched*
mbrl-lib once per model loss on the same env, seed and budget, streams each run's
progress in one live display (env steps done / total, latest return, ETA per run: tqdm
bars on a terminal, plain lines otherwise) while mbrl's own console output goes to each
run's log file, then prints both return curves' final values and the wall-clock ratio,
writes a PNG of the curves (``<out>/returns.png``, with the stored baseline curves of the
same setting from ``tests/baselines/`` as reference bands) and says where everything is.

    python -m vaml_ext.demo                       # built-in default (about 5 min on 2 CPU cores)
    python -m vaml_ext.demo --losses mle ma_l1 ma_vaml --steps 4000 --env mbpo_inv_pendulum

The default is paper Fig. 3's CartPole at the figure's ``short`` preset (upstream
mbrl-lib CartPole: 5,000 exploration steps, then 200-step epochs; 10 SAC updates per
step instead of 20, model training capped at 20 epochs per call), stopped after 2,000
env steps -- the setting of the MA-L1 learning regression
(``vaml_ext.mbpo.runner.REGRESSIONS["cartpole_2k"]``), where both losses learn. Runs go
``--jobs`` at a time, one CPU thread each, so the wall-clock ratio compares like with
like.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from vaml_ext.mbpo.runner import REGRESSIONS
from vaml_ext.runlog.rundir import REPO, read_csv_rows

DEFAULT_ENV = "mbpo_cartpole"
DEFAULT_LOSSES = ("mle", "ma_l1")
DEFAULT_STEPS = 2000
#: Per-env budget settings on top of the upstream override. CartPole: those of the
#: ``cartpole_2k`` learning regression (Fig. 3 short preset, upstream 5,000-step
#: exploration kept). Any other env: a 500-step warm-up and model training capped at 25
#: epochs per call.
ENV_OVERRIDES = {
    "mbpo_cartpole": tuple(
        o for o in REGRESSIONS["cartpole_2k"][1] if not o.startswith(("device=", "overrides.num_steps="))
    ),
}
OTHER_OVERRIDES = ("algorithm.initial_exploration_steps=500", "++overrides.num_epochs_train_model=25")
BASELINES = REPO / "tests" / "baselines"
#: files a run's progress is read from (cleared before the run so a previous demo's rows never show)
PROGRESS_FILES = ("returns.csv", "va_model.csv", "results.csv", "done.json")


def demo_overrides(env: str):
    return ENV_OVERRIDES.get(env, OTHER_OVERRIDES)


def _read(path: Path):
    try:
        return read_csv_rows(path, numeric=True, drop_empty=True)
    except (ValueError, OSError):  # a row being written right now
        return []


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


# ---- live progress ----------------------------------------------------------------------
class RunState:
    """What the display knows of one run, read from the files the run writes."""

    def __init__(self, loss: str, run_dir: Path, total: int):
        self.loss, self.run_dir, self.total = loss, run_dir, total
        self.steps, self.ret, self.best = 0, float("nan"), float("nan")
        self.n_evals = 0  # evaluations read so far: a plain-text line is printed per evaluation
        self.t0: float | None = None  # run started
        #: (time, steps) when loop steps were first / last seen to advance: the pace between
        #: them (setup and the initial exploration excluded) gives the ETA
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None
        self.end: tuple[int, float] | None = None  # (return code, seconds) once finished

    def poll(self) -> bool:
        """Re-read the run's files; True when a new evaluation arrived. (Model training is
        logged before the evaluation at the same step: a step count from it alone would
        print a line with the previous evaluation's return, then another with its own.)"""
        evals = _read(self.run_dir / "returns.csv")  # one row per evaluation (vaml RunRecorder)
        diag = _read(self.run_dir / "va_model.csv")  # one row per model training (vaml diagnostics)
        steps = max([int(r["env_steps"]) for r in evals[-1:]] + [int(r["env_step"]) + 1 for r in diag[-1:]] + [0])
        changed = len(evals) != self.n_evals
        self.n_evals = len(evals)
        if evals:
            self.ret = evals[-1]["return"]
            self.best = max(r["return"] for r in evals)
        if steps and self.first is None:
            self.first = (time.perf_counter(), steps)
        if steps > self.steps:
            self.last = (time.perf_counter(), steps)
        self.steps = min(steps, self.total)
        return bool(changed)

    @property
    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else (self.end[1] if self.end else time.perf_counter() - self.t0)

    def eta(self) -> float:
        if self.end:
            return 0.0
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return float("nan")
        seconds_per_step = (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])
        # progress arrives in chunks (one model training / evaluation), so count down in between
        return max(0.0, (self.total - self.steps) * seconds_per_step - (time.perf_counter() - self.last[0]))

    def phase(self) -> str:
        if self.t0 is None:
            return "waiting"
        if self.end:
            return "done" if self.end[0] == 0 else f"FAILED (exit {self.end[0]})"
        return "running" if self.steps else "setting up / exploring"

    def line(self) -> str:
        ret = "-" if not math.isfinite(self.ret) else f"{self.ret:.1f} (best {self.best:.1f})"
        return (
            f"[{self.loss}] {self.steps:,}/{self.total:,} env steps ({100 * self.steps / self.total:3.0f}%) | "
            f"return {ret} | elapsed {_fmt(self.elapsed)} | ETA {_fmt(self.eta())} | {self.phase()}"
        )


class Display:
    """One live display for all runs: tqdm bars on a terminal, plain lines otherwise (a new
    line per run for each evaluation, with its return, else one every ``interval`` s)."""

    def __init__(self, states, stream=None, tty=None, interval: float = 60.0):
        self.states = states
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)() if tty is None else tty
        self.interval = interval
        self._last = {s.loss: float("-inf") for s in states}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.bars = None
        if self.tty:
            from tqdm import tqdm

            width = max(len(s.loss) for s in states)
            self.bars = {
                s.loss: tqdm(
                    total=s.total,
                    desc=f"{s.loss:<{width}}",
                    position=i,
                    file=self.stream,
                    unit="step",
                    dynamic_ncols=True,
                    leave=True,
                    bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} env steps [{elapsed}] {postfix}",
                )
                for i, s in enumerate(states)
            }

    def start(self) -> Display:
        self._thread.start()
        return self

    def refresh(self, force: bool = False) -> None:
        now = time.perf_counter()
        for s in self.states:
            changed = s.poll()
            if self.bars is not None:
                bar = self.bars[s.loss]
                bar.n = s.steps
                ret = "-" if not math.isfinite(s.ret) else f"{s.ret:.1f}"
                bar.set_postfix_str(f"return {ret} | ETA {_fmt(s.eta())} | {s.phase()}", refresh=False)
                bar.refresh()
            elif force or (s.t0 is not None and not s.end and (changed or now - self._last[s.loss] >= self.interval)):
                self._last[s.loss] = now
                print(s.line(), file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0 if self.tty else 2.0):
            self.refresh()

    def finished(self, state: RunState) -> None:
        state.poll()
        if self.bars is None:
            print(state.line(), file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.refresh()
        if self.bars is not None:
            for bar in self.bars.values():
                bar.close()


# ---- runs -------------------------------------------------------------------------------
def run_command(loss: str, env: str, steps: int, seed: int, run_dir: Path, extra) -> list:
    return [
        sys.executable,
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        f"overrides={env}",
        f"overrides.model_loss={loss}",
        f"overrides.num_steps={steps}",
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
        *demo_overrides(env),
        *extra,
    ]


def run_one(state: RunState, cmd, log_path: Path, display: Display) -> dict:
    """Run one MBPO training; mbrl's own console output goes to ``log_path`` only."""
    env_vars = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONUNBUFFERED": "1",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable"),
        "VAML_RUN_TAG": f"demo {state.loss}",
    }
    state.run_dir.mkdir(parents=True, exist_ok=True)
    for name in PROGRESS_FILES:
        (state.run_dir / name).unlink(missing_ok=True)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        state.t0 = t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_vars).returncode
    state.end = (rc, time.perf_counter() - t0)
    display.finished(state)
    return {
        "loss": state.loss,
        "dir": state.run_dir,
        "seconds": state.end[1],
        "rc": rc,
        "log": log_path,
        "rows": _read(state.run_dir / "returns.csv"),
    }


# ---- curve plot -------------------------------------------------------------------------
def baseline_for(env: str, steps: int, extra, losses, baselines_dir: Path = BASELINES):
    """The stored learning-regression curves (``tests/baselines/mbpo_<regression>_<loss>.csv``)
    of exactly this demo's setting, per loss: ``{loss: {seed: [(env_steps, return), ...]}}``
    cut at ``steps``; ``{}`` when no stored regression has these settings."""
    if extra:
        return {}
    out = {}
    for name, (reg_env, reg_overrides) in REGRESSIONS.items():
        same = tuple(o for o in reg_overrides if not o.startswith(("device=", "overrides.num_steps=")))
        reg_steps = [int(o.split("=")[1]) for o in reg_overrides if o.startswith("overrides.num_steps=")]
        if reg_env != env or same != tuple(demo_overrides(env)) or (reg_steps and reg_steps[0] < steps):
            continue
        for loss in losses:
            path = baselines_dir / f"mbpo_{name}_{loss}.csv"
            curves: dict[int, list[tuple[int, float]]] = {}
            for r in _read(path):
                x = int(r["env_step"]) + 1  # mbrl's results.csv counts from 0; returns.csv counts steps done
                if x <= steps:
                    curves.setdefault(int(r["seed"]), []).append((x, r["episode_reward"]))
            if curves:
                out[loss] = curves
    return out


def plot_curves(runs, baseline, path: Path, title: str) -> Path:
    """PNG of each run's return curve (env steps on x) over the stored baseline of the same
    loss as a band (min-max over its seeds, mean dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for i, r in enumerate(runs):
        color = f"C{i}"
        base = baseline.get(r["loss"])
        if base:
            xs = sorted({x for c in base.values() for x, _ in c})
            by_x = {x: [y for c in base.values() for xx, y in c if xx == x] for x in xs}
            lo, hi = [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs]
            mean = [sum(by_x[x]) / len(by_x[x]) for x in xs]
            ax.fill_between(
                xs,
                lo,
                hi,
                color=color,
                alpha=0.15,
                linewidth=0,
                label=f"{r['loss']}: stored baseline, seeds {','.join(map(str, sorted(base)))} (min-max)",
            )
            ax.plot(
                xs,
                mean,
                color=color,
                linestyle="--",
                linewidth=1,
                alpha=0.8,
                label=f"{r['loss']}: stored baseline mean",
            )
        xs = [int(row["env_steps"]) for row in r["rows"]]
        ys = [row["return"] for row in r["rows"]]
        ax.plot(xs, ys, color=color, marker="o", markersize=3, linewidth=2, label=f"{r['loss']}: this run")
    ax.set_xlabel("env steps (after the initial exploration)")
    ax.set_ylabel("evaluation return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=DEFAULT_ENV, help=f"an MBPO override (default {DEFAULT_ENV})")
    p.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="env steps per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="runs at a time, one CPU thread each (default: 2 if the machine has 2 cores)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("extra", nargs="*", help="further Hydra overrides, e.g. overrides.va_loss_coeff=0.02")
    a = p.parse_args(argv)
    if a.steps <= 0:
        p.error("--steps must be positive")
    if a.jobs < 1:
        p.error("--jobs must be >= 1")
    import mbrl

    from vaml_ext.losses import available_losses

    conf = Path(mbrl.__file__).parent / "examples" / "conf" / "overrides"
    mbpo_envs = sorted(f.stem for f in conf.glob("mbpo_*.yaml"))
    if a.env not in mbpo_envs:
        p.error(f"unknown --env {a.env!r}; valid: {', '.join(mbpo_envs)}")
    bad = [x for x in a.losses if x not in available_losses()]
    if bad:
        p.error(f"unknown loss(es) {bad}; valid: {', '.join(available_losses())}")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"MBPO demo: env={a.env} losses={a.losses} steps={a.steps} seed={a.seed} jobs={a.jobs} -> {out}")
    print(f"settings: {' '.join(demo_overrides(a.env))}", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    states = [RunState(loss, out / loss, a.steps) for loss in a.losses]
    cmds = {s.loss: run_command(s.loss, a.env, a.steps, a.seed, s.run_dir, a.extra) for s in states}
    for s in states:
        print(f"[{s.loss}] {' '.join(cmds[s.loss][1:])}\n{' ' * (len(s.loss) + 3)}log: {out / (s.loss + '.log')}")
    print(
        f"progress: env steps after the initial exploration (ETA from the loop's own pace; {a.jobs} run(s) at a time)",
        flush=True,
    )
    display = Display(states, stream=sys.stdout).start()
    try:
        with ThreadPoolExecutor(a.jobs) as pool:
            results = list(pool.map(lambda s: run_one(s, cmds[s.loss], out / f"{s.loss}.log", display), states))
    finally:
        display.close()
    failed = [r for r in results if r["rc"] != 0]
    for r in failed:
        tail = r["log"].read_text().splitlines()[-15:]
        print(f"\n[{r['loss']}] failed (exit {r['rc']}); see {r['log']}:\n" + "\n".join(tail), file=sys.stderr)
    if failed:
        return 1

    base = next((r for r in results if r["loss"] == "mle"), results[0])
    print("\n== MBPO demo summary ==")
    print(
        f"{'loss':10s} {'final return':>12s} {'last-5 mean':>12s} {'best return':>12s} {'wall-clock s':>12s} "
        f"{'ratio':>7s}"
    )
    for r in results:
        rets = [row["return"] for row in r["rows"]]
        final = rets[-1] if rets else float("nan")
        last5 = sum(rets[-5:]) / len(rets[-5:]) if rets else float("nan")
        best = max(rets) if rets else float("nan")
        print(
            f"{r['loss']:10s} {final:12.1f} {last5:12.1f} {best:12.1f} {r['seconds']:12.0f} "
            f"{r['seconds'] / base['seconds']:7.2f}"
        )
    for r in results:
        curve = " ".join(f"{row['return']:.0f}" for row in r["rows"])
        print(f"  {r['loss']} return per epoch: {curve}")
    baseline = baseline_for(a.env, a.steps, a.extra, a.losses)
    title = f"MBPO {a.env}, seed {a.seed}, {a.steps:,} env steps: " + " vs ".join(a.losses)
    png = plot_curves(results, baseline, out / "returns.png", title)
    if baseline:
        note = "with the stored baseline curves of the same setting (tests/baselines/) as bands"
    else:
        note = "no stored baseline has these settings, so no reference band"
    print(f"\nCurves: {png} ({note})")
    print(
        f"Results: {out}/<loss>/ (returns.csv, results.csv, va_model.csv, model_train.csv, done.json, tb/, "
        f".hydra/config.yaml); mbrl's console log: {out}/<loss>.log"
    )
    return 0


if __name__ == "__main__":
    from vaml_ext.runlog import numerics

    numerics.pin()  # the runs' processes inherit it ($VAML_NUMERICS; pinned by default)
    sys.exit(main())
