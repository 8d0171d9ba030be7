"""The report's figures: return curves (IQM with 95% CIs) and PoI over MLE."""

from __future__ import annotations

import math
from pathlib import Path

from vaml_ext.exp.aggregate.sweep import SweepData


def _colors(methods):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_curves(data: SweepData, curves: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(data.envs)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colors = _colors(data.methods)
    for ax, env in zip(axes.flat, data.envs):
        for m in data.methods:
            pts = [r for r in curves if r["env"] == env and r["method"] == m]
            if not pts:
                continue
            x = [p["env_steps"] for p in pts]
            ax.plot(x, [p["iqm"] for p in pts], color=colors[m], label=m, lw=1.6)
            ax.fill_between(x, [p["iqm_lo"] for p in pts], [p["iqm_hi"] for p in pts], color=colors[m], alpha=0.2, lw=0)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("return (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a legend wider than few panels stays whole
    plt.close(fig)


def plot_poi(poi: list[dict], methods: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(poi) + 1.4))
    for i, r in enumerate(poi):
        y = len(poi) - 1 - i
        ax.plot([r["poi_lo"], r["poi_hi"]], [y, y], color=colors[r["method"]], lw=6, alpha=0.45, solid_capstyle="butt")
        ax.plot([r["poi"]], [y], "o", color=colors[r["method"]])
    ax.set_yticks(range(len(poi)))
    ax.set_yticklabels([f"{r['env']}: {r['method']} > {r['baseline']}" for r in reversed(poi)])
    ax.axvline(0.5, color="k", ls="--", lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("P(method > baseline), final return, 95% CI")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # long labels stay whole
    plt.close(fig)


def plot_ratios(versus: list[dict], methods: list[str], path: Path, title: str) -> None:
    """Per cell, IQM(method) / IQM(baseline) with its 95% CI; the band is the equivalence
    margin ``1 ± MARGIN``; cells without a ratio (baseline CI not above 0) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaml_ext.exp.claims import MARGIN

    rows = [r for r in versus if math.isfinite(r["ratio"])]
    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(12, 0.38 * len(rows) + 1.5))
    ax.axvspan(1 - MARGIN, 1 + MARGIN, color="0.85", zorder=0)
    ax.axvline(1.0, color="k", ls="--", lw=1)
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        c = colors[r["method"]]
        ax.plot([r["ratio_lo"], r["ratio_hi"]], [y, y], color=c, lw=6, alpha=0.45, solid_capstyle="butt")
        ax.plot([r["ratio"]], [y], "o", color=c)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['env']}: {r['method']} / {r['baseline']}  ({r['reading']})" for r in reversed(rows)])
    ax.set_xlabel(f"IQM ratio to the baseline, final return, 95% CI (grey: 1 ± {MARGIN:g}, 'matches')")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the long cell labels squeeze the axes; keep the xlabel whole
    plt.close(fig)
