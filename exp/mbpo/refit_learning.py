"""Stale-value refit size vs. learning (paper Algorithm 2; issue #3 item 8, learning side).

Runs MBPO-``ma_l1`` at a learning-regression setting (``REGRESSIONS`` in
``vaml_ext/mbpo/runner.py``, default ``cartpole_2k``) for each refit size
(``overrides.value_refit_batch_size``: start states rolled out in the model per refit)
and seed, ``--jobs`` runs at a time (one thread each), and prints per size: the score
(mean return over the last ``--last`` epochs) per seed, its mean and sd, its IQM with a
95% bootstrap CI, and seconds per run; then each variant against ``mle`` by the figure
reports' rule (CIs disjoint or overlapping). ``--naive`` adds the no-refit ablation
(``value_update_interval=0``). The stored baselines of the same setting
(``tests/baselines/mbpo_<regression>_{mle,ma_l1}.csv``; ma_l1 there = refit at the
default size) are printed beside them, so a sweep over the non-default sizes is enough;
they come from another machine, so they are compared only with each other. The overhead
side of the same curve is ``bench_overhead.py``.

    python exp/mbpo/refit_learning.py --sizes 100 10000 --seeds 0 1 2 --jobs 2
    python exp/mbpo/refit_learning.py --sizes 100 1000 10000 --seeds 0 1 2 3 4 overrides.num_steps=5000
    .venv-paper/bin/python exp/mbpo/refit_learning.py --sizes --methods mle ma_l1 overrides.profile=paper \
        overrides.checkpoint_every=1

Run with ``.venv-paper/bin/python`` (``make install-paper``) for the paper base (mbrl
0.2.0.dev3); its runs are kept apart from the default base's.

Extra Hydra overrides (positional) apply to every run; the stored baselines are then
not comparable and are not printed.

Finished runs in ``--work`` are reused, and with ``overrides.checkpoint_every=1`` an
interrupted run resumes from its last epoch; curves go to ``<work>/curves.csv`` and
``<work>/curves.png`` (per seed and the seed mean, per variant).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import os
import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vaml_ext.mbpo.runner import REGRESSIONS, read_results, regression_config, run_mbpo  # noqa: E402


def score_stat(scores, reps: int = 2000):
    """IQM over seeds with its 95% stratified-bootstrap CI (the figure reports' statistic,
    ``vaml_ext/exp/aggregate``), from NumPy's global RNG seeded 0 here and restored after."""
    import numpy as np

    from vaml_ext.exp.aggregate.sweep import iqm_stat

    state = np.random.get_state()
    np.random.seed(0)
    try:
        return iqm_stat(np.asarray(scores, float), reps)[0]
    finally:
        np.random.set_state(state)


def _one(regression, label, method, extra, seed, work):
    import torch

    torch.set_num_threads(1)
    run_dir = Path(work) / label.replace(" ", "_") / str(seed)
    done = run_dir / "done"
    if done.exists():
        return label, seed, _curve(run_dir), float(done.read_text())
    t0 = time.perf_counter()
    cfg = regression_config(regression, method, seed, extra)
    run_mbpo(cfg, run_dir, silent=True)
    seconds = time.perf_counter() - t0
    done.write_text(f"{seconds:.1f}")
    return label, seed, _curve(run_dir), seconds


def _curve(run_dir):
    """Evaluation returns of a run: ``returns.csv`` (the complete record, also across a
    resume with ``overrides.checkpoint_every``), else mbrl's ``results.csv``."""
    path = Path(run_dir) / "returns.csv"
    if path.exists():
        with open(path) as f:
            return [float(r["return"]) for r in csv.DictReader(f)]
    return [r["episode_reward"] for r in read_results(run_dir)]


def _stored(regression, method):
    path = REPO / "tests" / "baselines" / f"mbpo_{regression}_{method}.csv"
    if not path.exists():
        return {}
    curves = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            curves.setdefault(int(row["seed"]), []).append(float(row["episode_reward"]))
    return curves


def plot_curves(curves, labels, seeds, path: Path, title: str, last: int = 0) -> None:
    """Per-epoch returns of each variant: one thin line per seed, the seed mean bold; the
    score's window (the last ``last`` epochs) shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = 0
    for i, label in enumerate(labels):
        color = f"C{i}"
        runs = [curves[(label, s)] for s in seeds if (label, s) in curves]
        if not runs:
            raise ValueError(f"no curves of {label!r} for seeds {seeds}")
        for c in runs:
            ax.plot(range(len(c)), c, color=color, alpha=0.25, lw=1)
            epochs = max(epochs, len(c))
        n = min(len(c) for c in runs)
        mean = [statistics.mean(c[e] for c in runs) for e in range(n)]
        ax.plot(range(n), mean, color=color, lw=2.5, label=f"{label} (mean of {len(runs)} seeds)")
    if last:
        end = epochs - 1
        ax.axvspan(end - last + 1, end, color="0.9", zorder=0, label=f"score: mean of the last {last} epochs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("evaluation return")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _variants(a) -> list:
    """``(label, model loss, overrides)`` per variant the arguments ask for."""
    variants = [(m, m, list(a.extra)) for m in a.methods]
    variants += [(f"refit {n}", "ma_l1", [f"overrides.value_refit_batch_size={n}", *a.extra]) for n in a.sizes]
    if a.naive:
        variants.append(("naive", "ma_l1", ["overrides.value_update_interval=0", *a.extra]))
    return variants


def _merge_curves(path: Path, results: dict) -> dict:
    """Earlier invocations' curves in ``path`` (other seeds/sizes) are kept, this one's
    ``results`` replace theirs; the union is written back and returned."""
    rows: dict = {}
    if path.exists():
        with open(path) as f:
            for r in csv.DictReader(f):
                rows.setdefault((r["variant"], int(r["seed"])), []).append(float(r["return"]))
    rows.update({key: curve for key, (curve, _) in results.items()})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "epoch", "return"])
        for (label, seed), curve in sorted(rows.items()):
            w.writerows([label, seed, i, r] for i, r in enumerate(curve))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regression", choices=sorted(REGRESSIONS), default="cartpole_2k")
    p.add_argument("--sizes", nargs="*", type=int, default=[100, 10000])
    p.add_argument(
        "--methods",
        nargs="*",
        default=[],
        help="also run these model losses at their defaults (e.g. mle ma_l1 with overrides.profile=paper)",
    )
    p.add_argument("--naive", action="store_true", help="add the no-refit ablation (value_update_interval=0)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--last", type=int, default=5, help="score = mean return over the last N epochs")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "refit_learning")
    p.add_argument("extra", nargs="*", help="further Hydra overrides for every run, e.g. overrides.num_steps=5000")
    a = p.parse_args(argv)
    if any(n <= 0 for n in a.sizes):
        p.error("--sizes must be positive")
    if not (a.sizes or a.methods or a.naive):
        p.error("nothing to run: give --sizes, --methods or --naive")
    from vaml_ext.losses import available_losses

    bad = [m for m in a.methods if m not in available_losses()]
    if bad:
        p.error(f"unknown --methods {bad}; valid: {', '.join(available_losses())}")
    tag = a.regression
    mbrl_version = importlib.metadata.version("mbrl")
    if mbrl_version != "0.2.0":  # the paper base (make install-paper): keep its runs apart
        tag += f"-mbrl{mbrl_version}"
    if a.extra:  # finished runs are reused by directory: keep other settings apart
        tag += "-" + hashlib.sha1(" ".join(a.extra).encode()).hexdigest()[:8]
    work = a.work / tag
    work.mkdir(parents=True, exist_ok=True)
    variants = _variants(a)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"{a.regression} {' '.join(a.extra)} on mbrl {mbrl_version}: {len(variants) * len(a.seeds)} runs, {a.jobs} at a time (commit {commit})",
        flush=True,
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    with ProcessPoolExecutor(a.jobs) as pool:
        futs = [  # seed-major: the variants of one seed finish together
            pool.submit(_one, a.regression, label, method, extra, seed, str(work))
            for seed in a.seeds
            for label, method, extra in variants
        ]
        for f in futs:
            label, seed, curve, seconds = f.result()
            results[(label, seed)] = (curve, seconds)
            print(f"  {label:>12} seed {seed}: {[round(x) for x in curve]} ({seconds:.0f} s)", flush=True)
    rows = _merge_curves(work / "curves.csv", results)

    plot_curves(
        rows,
        [label for label, _, _ in variants],
        a.seeds,
        work / "curves.png",
        f"{a.regression} {' '.join(a.extra)} on mbrl {mbrl_version}, commit {commit}",
        a.last,
    )

    print(f"\nscore = mean return over the last {a.last} epochs; {a.regression}, commit {commit}")
    print(f"| variant | {' | '.join(f'seed {s}' for s in a.seeds)} | mean | sd | IQM [95% CI] | s/run |")
    print("|---|" + "---|" * (len(a.seeds) + 4))
    stats = {}

    def row(label, curves, seconds=None):
        scores = [statistics.mean(curves[s][-a.last :]) for s in a.seeds if s in curves]
        if not scores:
            return
        sd = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        sec = f"{statistics.median(seconds):.0f}" if seconds else "-"
        st = stats[label] = score_stat(scores)
        cells = [f"{statistics.mean(curves[s][-a.last :]):.1f}" if s in curves else "" for s in a.seeds]  # aligned
        print(
            f"| {label} | {' | '.join(cells)} | {statistics.mean(scores):.1f} | {sd:.1f} "
            f"| {st.iqm:.1f} [{st.lo:.1f}, {st.hi:.1f}] | {sec} |"
        )

    if not a.extra:
        row("mle (stored)", _stored(a.regression, "mle"))
        row("ma_l1, refit 1000 (stored, default)", _stored(a.regression, "ma_l1"))
    for label, method, _ in variants:
        row(
            label if label == method else f"{method}, {label}",
            {s: results[(label, s)][0] for s in a.seeds},
            [results[(label, s)][1] for s in a.seeds],
        )
    from vaml_ext.exp.claims import compare  # the figure reports' verdict rule: disjoint CIs or not

    for label, st in stats.items():
        base = "mle (stored)" if "(stored" in label else "mle"  # stored runs came from another commit/machine
        if not label.startswith("mle") and base in stats:
            print(f"{label} vs {base}: {compare(st, stats[base])} (IQM CIs; below/above = disjoint)")
    print(f"curves: {work / 'curves.csv'}, {work / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
