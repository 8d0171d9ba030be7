"""Steps-to-goal table of a Figure-1 sweep (paper §5.1: "number of environment steps to
reach the goal"). The figure command's aggregation (``python -m vaml_ext.exp fig1``)
writes it as ``steps_to_goal.md`` next to ``report.md`` and appends it to the report.

A run reaches the goal at the first evaluation whose greedy-policy return exceeds 1 (a
return above 1 means the goal was reached: :mod:`vaml_ext.gridworld.env`); the table gives
the median over seeds per method and grid size, a seed that never gets there within the
budget counting as ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from vaml_ext.gridworld.objectives import METHOD_LABELS

GOAL_RETURN = 1.0


def first_exceed(steps: list[int], returns: list[float], threshold: float = GOAL_RETURN) -> int | None:
    """Env steps at the first evaluation whose return exceeds ``threshold`` (None: never)."""
    for s, r in zip(steps, returns):
        if r > threshold:
            return int(s)
    return None


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def steps_to_goal(rows: Iterable[dict]) -> dict[int, dict[str, dict]]:
    """``rows``: ``size, method, seed, env_steps, return`` per evaluation. Per size and method:
    per-seed first-exceed steps, their median (``inf`` if half or more never get there),
    the number of seeds that did, and the largest env-step count evaluated (the budget)."""
    curves: dict[tuple, dict[object, list[tuple]]] = {}
    for r in rows:
        key = (int(r["size"]), r["method"])
        curves.setdefault(key, {}).setdefault(r["seed"], []).append((int(r["env_steps"]), float(r["return"])))
    out: dict[int, dict[str, dict]] = {}
    for (size, method), by_seed in sorted(curves.items()):
        firsts = []
        budget = 0
        for seed in sorted(by_seed, key=str):
            pts = sorted(by_seed[seed])
            budget = max(budget, pts[-1][0])
            firsts.append(first_exceed([p[0] for p in pts], [p[1] for p in pts]))
        vals = [math.inf if f is None else float(f) for f in firsts]
        out.setdefault(size, {})[method] = {
            "per_seed": firsts,
            "median": _median(vals),
            "solved": sum(f is not None for f in firsts),
            "budget": budget,
        }
    return out


def _fmt(x: float) -> str:
    return "never" if math.isinf(x) else f"{int(x)}"


def markdown_table(table: dict[int, dict[str, dict]], methods: list[str] | None = None) -> str:
    """The table as Markdown (one row per method, one column per size)."""
    sizes = sorted(table)
    if methods is None:
        present = {m for s in sizes for m in table[s]}
        methods = [m for m in METHOD_LABELS if m in present] + sorted(present - set(METHOD_LABELS))
    lines = [
        "Env steps until the greedy policy's return first exceeds 1 (goal reached): median over seeds "
        "(seeds that reached it / all; `never` = not within the budget).",
        "",
        "| method | "
        + " | ".join(f"{s}x{s} (budget {max(e['budget'] for e in table[s].values())})" for s in sizes)
        + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for m in methods:
        cells = []
        for s in sizes:
            e = table[s].get(m)
            cells.append("-" if e is None else f"{_fmt(e['median'])} ({e['solved']}/{len(e['per_seed'])})")
        lines.append(f"| {METHOD_LABELS.get(m, m)} (`{m}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
