"""Is the network-model failure of the value-aware objectives the objective or the optimiser?

    OMP_NUM_THREADS=1 python exp/gridworld/va_coeff_lr.py                       # the declared screen
    OMP_NUM_THREADS=1 python exp/gridworld/va_coeff_lr.py --sizes 12 --seeds 1  # a slice

With Figure 1's network model (2×16 tanh on cell coordinates, Adam lr 0.01), every
value-aware objective stays near the uniform model beyond 8×8 (``model_tv`` ≈ 0.99) while MLE
fits every room (``vaml_ext/gridworld/README.md``). The value-aware gradient is scaled by
``va_loss_coeff`` = 0.01 at the network's lr 0.01 (the table model uses lr 0.1). This screen
runs the Dyna loop of Figure 1 (the ``paper_mlp`` budgets: 10,000 env steps at 12×12, 16,000
at 16×16) for ``ma_l1`` and ``ma_vaml`` over ``va_loss_coeff`` × ``model_lr`` × the refit's
critic updates (``refit_updates``), and ``mle`` at each ``model_lr``. Per run it records the
final greedy return, whether the greedy policy reaches the goal (return > 1,
``vaml_ext/gridworld/steps.py``), the AUC (mean return over the evaluations) and the final
``model_tv``. The plan and the decision rule: ``exp/gridworld/reference/va_coeff_lr/README.md``.

Runs of one (size, setting) share one batched Dyna trainer (``run_dyna``'s stream: a run's
numbers depend on its batch), so a setting's seeds are its places in that batch. Results are
appended to ``runs.csv`` setting by setting; a re-run skips the settings already there.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import time
from pathlib import Path

from vaml_ext.gridworld.dyna import DynaConfig, DynaTrainer
from vaml_ext.gridworld.steps import GOAL_RETURN

OUT = Path(__file__).resolve().parent / "reference" / "va_coeff_lr"
BUDGET = {12: (10000, 400), 16: (16000, 400)}  # fig1 paper_mlp: env steps, eval every
FIELDS = ("size", "method", "va_loss_coeff", "model_lr", "refit_updates", "seed", "final_return", "reached_goal",
          "auc", "model_tv", "wall_s")  # fmt: skip


def settings(args) -> list[dict]:
    out = []
    for size in args.sizes:
        for lr in args.lrs:
            out.append({"size": size, "method": "mle", "va_loss_coeff": "", "model_lr": lr, "refit_updates": ""})
        for coeff, lr, ru in itertools.product(args.coeffs, args.lrs, args.refit_updates):
            for m in args.methods:
                out.append({"size": size, "method": m, "va_loss_coeff": coeff, "model_lr": lr, "refit_updates": ru})
    return out


def key(row) -> tuple:
    return tuple(str(row[k]) for k in ("size", "method", "va_loss_coeff", "model_lr", "refit_updates"))


def run_setting(s: dict, seeds: int) -> list[dict]:
    steps, every = BUDGET[s["size"]]
    cfg = DynaConfig(
        env_steps=steps,
        eval_every=every,
        model="mlp",
        mlp_hidden=16,
        model_lr=float(s["model_lr"]),
        va_loss_coeff=float(s["va_loss_coeff"] or 0.01),
        refit_updates=int(s["refit_updates"] or 1),
    )
    t0 = time.perf_counter()
    tr = DynaTrainer(s["size"], [s["method"]] * seeds, cfg, base_seed=0)
    returns = [tr.evaluate()]
    while not tr.finished:
        tr.train_iteration()
        for _ in range(tr.due_evaluations()):
            returns.append(tr.evaluate())
    tv = tr.model_error()
    wall = time.perf_counter() - t0
    rows = []
    for i in range(seeds):
        curve = [float(r[i]) for r in returns]
        rows.append(
            {
                **s,
                "seed": i,
                "final_return": round(curve[-1], 6),
                "reached_goal": int(curve[-1] > GOAL_RETURN),
                "auc": round(sum(curve) / len(curve), 6),
                "model_tv": round(float(tv[i]), 6),
                "wall_s": round(wall, 1),
            }
        )
    return rows


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return float("nan") if n == 0 else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def summarise(rows: list[dict], out: Path) -> None:
    """``summary.md`` (one line per setting) and ``screen.png`` (goal-reaching fraction)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    lines = [
        "| size | method | va_loss_coeff | model_lr | refit_updates | reach the goal | final return (median) | AUC (median) | model_tv (median [min, max]) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(groups, key=lambda k: (int(k[0]), k[1] != "mle", k[1], k[2], float(k[3]), k[4])):
        g = groups[k]
        tv = [float(r["model_tv"]) for r in g]
        lines.append(
            f"| {k[0]} | {k[1]} | {k[2] or '-'} | {k[3]} | {k[4] or '-'} | {sum(int(r['reached_goal']) for r in g)}/{len(g)} | "
            f"{median([float(r['final_return']) for r in g]):.3f} | {median([float(r['auc']) for r in g]):.3f} | "
            f"{median(tv):.3f} [{min(tv):.3f}, {max(tv):.3f}] |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    sizes = sorted({int(r["size"]) for r in rows})
    methods = sorted({r["method"] for r in rows if r["method"] != "mle"})
    refits = sorted({r["refit_updates"] for r in rows if r["method"] != "mle"})
    coeffs = sorted({float(r["va_loss_coeff"]) for r in rows if r["method"] != "mle"})
    lrs = sorted({float(r["model_lr"]) for r in rows})
    cols = [(m, ru) for m in methods for ru in refits]
    if not cols or not sizes:
        return
    fig, axes = plt.subplots(
        len(sizes), len(cols), figsize=(2.3 * len(cols) + 1.2, 2.4 * len(sizes) + 0.4), squeeze=False
    )
    im = None
    for row, s in enumerate(sizes):
        mle = groups.get((str(s), "mle", "", str(lrs[0]), "")) or []
        for col, (m, ru) in enumerate(cols):
            ax = axes[row][col]
            grid = [[math.nan] * len(lrs) for _ in coeffs]
            for i, c in enumerate(coeffs):
                for j, lr in enumerate(lrs):
                    g = groups.get((str(s), m, str(c), str(lr), ru))
                    if g:
                        grid[i][j] = sum(int(r["reached_goal"]) for r in g) / len(g)
            im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower")
            ax.set_xticks(range(len(lrs)), [f"{x:g}" for x in lrs])
            ax.set_yticks(range(len(coeffs)), [f"{x:g}" for x in coeffs])
            if row == len(sizes) - 1:
                ax.set_xlabel("model_lr")
            if col == 0:
                reach = f"mle: {sum(int(r['reached_goal']) for r in mle)}/{len(mle)}" if mle else ""
                ax.set_ylabel(f"{s}x{s}  {reach}\nva_loss_coeff", fontsize=9)
            ax.set_title(f"{m}, refit_updates={ru}", fontsize=8)
            for i in range(len(coeffs)):
                for j in range(len(lrs)):
                    if not math.isnan(grid[i][j]):
                        ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.suptitle("Network model: fraction of runs whose greedy policy reaches the goal", fontsize=10)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="fraction reaching the goal")
    fig.savefig(out / "screen.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 16])
    ap.add_argument("--methods", nargs="+", default=["ma_l1", "ma_vaml"])
    ap.add_argument("--coeffs", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--refit-updates", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--seeds", type=int, default=3, help="runs per setting (places in one batch)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.csv"
    rows = read_rows(path)
    done = {key(r) for r in rows}
    todo = [s for s in settings(args) if key({k: s[k] for k in s}) not in done]
    print(f"[va_coeff_lr] {len(todo)} setting(s) to run, {len(done)} done -> {path}", flush=True)
    t0 = time.perf_counter()
    for i, s in enumerate(todo, 1):
        new = run_setting(s, args.seeds)
        write_header = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            if write_header:
                w.writeheader()
            w.writerows(new)
        rows += [{k: str(v) for k, v in r.items()} for r in new]
        reach = sum(r["reached_goal"] for r in new)
        print(
            f"[va_coeff_lr] {i}/{len(todo)} {s['size']}x{s['size']} {s['method']} coeff={s['va_loss_coeff'] or '-'} "
            f"lr={s['model_lr']} refit_updates={s['refit_updates'] or '-'}: goal {reach}/{len(new)}, "
            f"model_tv {median([r['model_tv'] for r in new]):.3f} ({new[0]['wall_s']:.0f}s; "
            f"{time.perf_counter() - t0:.0f}s total)",
            flush=True,
        )
    summarise(rows, args.out)
    print(f"[va_coeff_lr] {args.out / 'summary.md'}, {args.out / 'screen.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
