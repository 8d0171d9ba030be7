"""Figure-1 sweep: 5 methods × 4 grid sizes × 5 seeds, one command.

    python -m vaml_ext.gridworld.sweep --config exp/gridworld/fig1.yaml --out exp/results/gridworld/fig1

Writes into ``--out``:

* ``curves.csv`` -- ``size, method, seed, env_steps, return`` (greedy-policy return of the
  real environment at every evaluation);
* ``fig1.png`` -- one panel per size, mean and 95% CI (Student t over seeds) vs env steps;
* ``steps_to_goal.md`` -- env steps until the return first exceeds 1, median over seeds
  per method and size, plus the paper's three qualitative checks;
* ``summary.json`` -- the resolved config, per-size wall-clock and the table.

All runs of one size train together as batched tensors (:func:`~vaml_ext.gridworld.dyna.run_dyna`);
sizes run in ``--workers`` processes. The sweep's wall-clock is printed at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, Optional

from vaml_ext.gridworld.objectives import METHOD_LABELS, METHODS

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "exp" / "gridworld" / "fig1.yaml"
# two-sided 95% Student-t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


class ConfigError(ValueError):
    pass


def load_config(path: Optional[str], overrides: Optional[dict] = None) -> dict:
    """Read and validate the sweep YAML (``methods``, ``sizes``, ``seeds``, ``base_seed``,
    ``env_steps``/``eval_every`` per size, ``workers``, ``dyna`` options)."""
    import yaml

    from vaml_ext.gridworld.dyna import DynaConfig
    from vaml_ext.gridworld.env import _check_size

    cfg: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {"methods", "sizes", "seeds", "base_seed", "env_steps", "eval_every", "workers", "dyna"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")

    methods = list(cfg.get("methods", METHODS))
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"methods must be distinct names from {list(METHODS)}; got {methods}")
    try:
        sizes = [_check_size(s) for s in cfg.get("sizes", [5, 8, 12, 16])]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    seeds = cfg.get("seeds", 5)
    seeds = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(
            f"seeds must be a positive count or a list of non-negative integers; got {cfg.get('seeds')!r}"
        )

    def per_size(key, default):
        val = cfg.get(key, default)
        if isinstance(val, dict):
            missing = [s for s in sizes if s not in val and str(s) not in val]
            if missing:
                raise ConfigError(f"{key} has no entry for size(s) {missing}")
            out = {s: val.get(s, val.get(str(s))) for s in sizes}
        else:
            out = {s: val for s in sizes}
        for s, v in out.items():
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{key}[{s}] must be a positive integer, got {v!r}")
        return out

    env_steps = per_size("env_steps", 2000)
    eval_every = per_size("eval_every", 100)
    dyna = cfg.get("dyna") or {}
    if not isinstance(dyna, dict):
        raise ConfigError("dyna must be a mapping of Dyna options")
    try:
        DynaConfig.from_dict(dict(dyna, env_steps=1))  # validate
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    workers = cfg.get("workers", 2)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    base_seed = cfg.get("base_seed", 0)
    if not isinstance(base_seed, int) or isinstance(base_seed, bool):
        raise ConfigError(f"base_seed must be an integer, got {base_seed!r}")
    return {
        "methods": methods,
        "sizes": sizes,
        "seeds": seeds,
        "base_seed": base_seed,
        "env_steps": env_steps,
        "eval_every": eval_every,
        "workers": workers,
        "dyna": dyna,
    }


def _run_size(size: int, cfg: dict, threads: int = 1) -> dict:
    import torch

    from vaml_ext.gridworld.dyna import DynaConfig, run_dyna

    torch.set_num_threads(threads)
    cpu0 = time.process_time()
    dyna = DynaConfig.from_dict(dict(cfg["dyna"], env_steps=cfg["env_steps"][size], eval_every=cfg["eval_every"][size]))
    methods = [m for m in cfg["methods"] for _ in cfg["seeds"]]
    seeds = [s for _ in cfg["methods"] for s in cfg["seeds"]]
    res = run_dyna(size, methods, seeds, dyna, base_seed=cfg["base_seed"], progress=lambda msg: print(msg, flush=True))
    return {
        "size": size,
        "methods": methods,
        "seeds": seeds,
        "steps": res.steps,
        "returns": res.returns,
        "wall_s": res.wall_s,
        "cpu_s": time.process_time() - cpu0,
    }


# ----------------------------------------------------------------------------- analysis
def first_exceed(steps: List[int], returns: List[float], threshold: float = 1.0) -> Optional[int]:
    """Env steps at the first evaluation whose return exceeds ``threshold`` (None: never)."""
    for s, r in zip(steps, returns):
        if r > threshold:
            return s
    return None


def _median(xs: List[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def steps_to_goal(rows: List[dict], budgets: Dict[int, int]) -> Dict[int, Dict[str, dict]]:
    """Per size and method: per-seed first-exceed steps and their median (a seed that never
    exceeds 1 counts as ``inf``; the median is then ``inf`` if half or more never do)."""
    curves: Dict[tuple, Dict[int, List[tuple]]] = {}
    for r in rows:
        curves.setdefault((r["size"], r["method"]), {}).setdefault(r["seed"], []).append((r["env_steps"], r["return"]))
    out: Dict[int, Dict[str, dict]] = {}
    for (size, method), by_seed in sorted(curves.items()):
        firsts = []
        for seed in sorted(by_seed):
            pts = sorted(by_seed[seed])
            firsts.append(first_exceed([p[0] for p in pts], [p[1] for p in pts]))
        vals = [math.inf if f is None else float(f) for f in firsts]
        out.setdefault(size, {})[method] = {
            "per_seed": firsts,
            "median": _median(vals),
            "solved": sum(f is not None for f in firsts),
            "budget": budgets[size],
        }
    return out


def qualitative_checks(table: Dict[int, Dict[str, dict]]) -> List[tuple]:
    """The paper's three claims, evaluated on the table: (claim, holds, evidence)."""
    sizes = sorted(table)
    checks = []
    if "mle" in table[sizes[0]]:
        med = [table[s]["mle"]["median"] for s in sizes]
        mono = all(b >= a for a, b in zip(med, med[1:])) and med[-1] > med[0]
        checks.append(
            ("MLE's steps-to-goal grows with grid size", mono, ", ".join(f"{s}: {_fmt(m)}" for s, m in zip(sizes, med)))
        )
        big = sizes[-1]
        for m in table[big]:
            if m == "mle":
                continue
            a, b = table[big][m]["median"], table[big]["mle"]["median"]
            checks.append(
                (
                    f"{big}x{big}: {METHOD_LABELS[m]} reaches return > 1 in fewer env steps than MLE (median)",
                    a < b,
                    f"{_fmt(a)} vs {_fmt(b)}",
                )
            )
    for ub, dr in (("ma_l1", "ma_direct_l1"), ("ma_vaml", "ma_direct_l2")):
        if ub in table[sizes[0]] and dr in table[sizes[0]]:
            wins = [s for s in sizes if table[s][ub]["median"] <= table[s][dr]["median"]]
            checks.append(
                (
                    f"{METHOD_LABELS[ub]} converges no slower than {METHOD_LABELS[dr]} (median, per size)",
                    len(wins) == len(sizes),
                    "; ".join(f"{s}: {_fmt(table[s][ub]['median'])} vs {_fmt(table[s][dr]['median'])}" for s in sizes),
                )
            )
    return checks


def _fmt(x: float) -> str:
    return "never" if math.isinf(x) else f"{int(x)}"


def markdown_table(table: Dict[int, Dict[str, dict]], methods: List[str], wall_s: Optional[float] = None) -> str:
    sizes = sorted(table)
    lines = [
        "Env steps until the greedy policy's return first exceeds 1 (goal reached): median over seeds "
        "(seeds that reached it / all; `never` = not within the budget).",
        "",
    ]
    lines.append("| method | " + " | ".join(f"{s}x{s} (budget {table[s][methods[0]]['budget']})" for s in sizes) + " |")
    lines.append("|---|" + "---|" * len(sizes))
    for m in methods:
        cells = []
        for s in sizes:
            e = table[s][m]
            cells.append(f"{_fmt(e['median'])} ({e['solved']}/{len(e['per_seed'])})")
        lines.append(f"| {METHOD_LABELS[m]} | " + " | ".join(cells) + " |")
    lines += ["", "Paper's qualitative findings on this table:", ""]
    for claim, ok, ev in qualitative_checks(table):
        lines.append(f"- [{'x' if ok else ' '}] {claim} -- {ev}")
    if wall_s is not None:
        lines += ["", f"Sweep wall-clock: {wall_s:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(rows: List[dict], methods: List[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sizes = sorted({r["size"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), squeeze=False)
    colors = dict(zip(METHODS, ["tab:gray", "tab:orange", "tab:purple", "tab:blue", "tab:green"]))
    for ax, size in zip(axes[0], sizes):
        for m in methods:
            sel = [r for r in rows if r["size"] == size and r["method"] == m]
            seeds = sorted({r["seed"] for r in sel})
            steps = sorted({r["env_steps"] for r in sel})
            grid = np.full((len(seeds), len(steps)), np.nan)
            for r in sel:
                grid[seeds.index(r["seed"]), steps.index(r["env_steps"])] = r["return"]
            mean = grid.mean(0)
            n = len(seeds)
            half = _T95.get(n - 1, 1.96) * grid.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
            ax.plot(steps, mean, label=METHOD_LABELS[m], color=colors.get(m))
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=colors.get(m))
        ax.axhline(1.0, color="k", lw=0.6, ls="--")
        ax.set_title(f"MiniGrid-Empty {size}x{size}")
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.05, 1.6)
    axes[0][0].set_ylabel("return (greedy policy)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def run_sweep(cfg: dict, out: Path, log=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_runs = len(cfg["methods"]) * len(cfg["seeds"])
    log(
        f"gridworld sweep: {len(cfg['methods'])} methods x {len(cfg['sizes'])} sizes x {len(cfg['seeds'])} seeds "
        f"= {n_runs * len(cfg['sizes'])} runs, {cfg['workers']} worker(s), output {out}"
    )
    order = sorted(cfg["sizes"], key=lambda s: -s * s * cfg["env_steps"][s])  # longest first
    results = {}
    if cfg["workers"] == 1 or len(order) == 1:
        for s in order:
            results[s] = _run_size(s, cfg)
    else:
        with ProcessPoolExecutor(max_workers=min(cfg["workers"], len(order))) as pool:
            futs = {pool.submit(_run_size, s, cfg): s for s in order}
            for f in as_completed(futs):
                r = f.result()
                results[r["size"]] = r
                log(f"size {r['size']} done in {r['wall_s']:.0f}s ({r['cpu_s']:.0f} CPU-s)")
    rows = []
    for s in sorted(results):
        r = results[s]
        for k, steps in enumerate(r["steps"]):
            for i, (m, seed) in enumerate(zip(r["methods"], r["seeds"])):
                rows.append({"size": s, "method": m, "seed": seed, "env_steps": steps, "return": r["returns"][k][i]})
    with open(out / "curves.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["size", "method", "seed", "env_steps", "return"])
        w.writeheader()
        for row in rows:
            w.writerow(dict(row, **{"return": f"{row['return']:.6f}"}))
    wall = time.perf_counter() - t0
    table = steps_to_goal(rows, cfg["env_steps"])
    md = markdown_table(table, cfg["methods"], wall)
    (out / "steps_to_goal.md").write_text(md)
    plot(rows, cfg["methods"], out / "fig1.png")
    cpu = sum(r["cpu_s"] for r in results.values())
    summary = {
        "config": cfg,
        "wall_clock_s": wall,
        "per_size_wall_s": {s: results[s]["wall_s"] for s in results},
        "training_cpu_s": cpu,
        "load_avg_at_end": os.getloadavg(),
        "steps_to_goal": {
            s: {
                m: {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in e.items()}
                for m, e in t.items()
            }
            for s, t in table.items()
        },
        "checks": [{"claim": c, "holds": ok, "evidence": ev} for c, ok, ev in qualitative_checks(table)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(md)
    log(f"wrote {out / 'curves.csv'}, {out / 'fig1.png'}, {out / 'steps_to_goal.md'}")
    load = os.getloadavg()[0]
    log(
        f"sweep wall-clock: {wall:.1f} s ({wall / 60:.1f} min) on {os.cpu_count()} CPU core(s); "
        f"training CPU time {cpu:.0f} s over all workers; 1-min load average at the end {load:.1f}"
    )
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaml_ext.gridworld.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="sweep YAML (default: %(default)s)")
    ap.add_argument("--out", default="exp/results/gridworld/fig1", help="output directory (default: %(default)s)")
    ap.add_argument("--workers", type=int, help="processes (one grid size each); overrides the config")
    ap.add_argument("--sizes", type=int, nargs="+", help="grid sizes; overrides the config")
    ap.add_argument("--seeds", type=int, help="number of seeds; overrides the config")
    ap.add_argument("--methods", nargs="+", help="registry names; overrides the config")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(
            args.config, {"workers": args.workers, "sizes": args.sizes, "seeds": args.seeds, "methods": args.methods}
        )
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_sweep(cfg, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
