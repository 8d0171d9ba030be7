"""How many seeds would separate two methods: the budget an inconclusive comparison needs.

The claims use a disjoint-CI rule (:mod:`vaml_ext.exp.claims`): a method beats another when
their 95% CIs do not overlap. With per-method normal CIs ``mean +- 1.96 sd / sqrt(n)`` and a
common seed spread ``sd``, the CIs are disjoint when the *observed* difference exceeds
``2 * 1.96 * sd / sqrt(n)``. The observed difference of means scatters around the true
``delta`` with sd ``sd * sqrt(2 / n)``, so it clears that bar with probability ``POWER``
(80%) once

    |delta| >= (2 * 1.96 + z_0.8 * sqrt(2)) * sd / sqrt(n)
        <=>   n >= ((3.92 + 0.8416 * 1.414) * sd / |delta|) ** 2 = (5.11 * sd / |delta|) ** 2.

(Asking only that CIs ``delta`` apart be disjoint, as this module did before, gives 50% power.)
:func:`seeds_to_separate` is that ``n`` per method, from the observed difference of means and
the pooled seed sd, and never below the rule's own minimum (``MIN_SEEDS``). It is a planning
figure at *this* budget (a longer run changes both the effect and the spread), not a test;
the bootstrap CIs of the report are a little wider than normal ones at small ``n``, so read it
as a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vaml_ext.exp.claims import MIN_SEEDS
from vaml_ext.runlog import rundir

Z95 = 1.959963984540054
POWER = 0.8
Z_POWER = 0.8416212335729143  # standard normal quantile at POWER


def pooled_sd(x: Sequence[float], y: Sequence[float]) -> float:
    """Pooled sample standard deviation of two groups (each needs >= 2 values)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"pooled_sd needs >= 2 values per group, got {len(a)} and {len(b)}")
    return math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))


def seeds_to_separate(x: Sequence[float], y: Sequence[float]) -> int | None:
    """Seeds per method at which the disjoint-CI rule separates a true difference equal to
    the observed one with probability :data:`POWER`, at least ``MIN_SEEDS``; ``None`` when the
    observed difference is exactly 0 (no finite number separates it)."""
    delta = float(np.mean(x) - np.mean(y))
    sd = pooled_sd(x, y)
    if delta == 0.0:
        return None
    if sd == 0.0:
        return MIN_SEEDS
    return max(MIN_SEEDS, math.ceil(((2 * Z95 + Z_POWER * math.sqrt(2)) * sd / abs(delta)) ** 2))


def separation_table(data, pairs: Sequence[tuple]) -> list[dict]:
    """One row per env and ``(method, baseline)`` pair of the loaded sweep ``data``
    (:class:`~vaml_ext.exp.aggregate.sweep.SweepData`: the same runs and final returns the PoI
    uses): means, pooled sd, observed difference, the seeds per method that would separate it,
    and the CPU hours those runs would cost at the median wall-clock per run of the pair
    (``done.json`` ``wall_time_s``; None where absent)."""
    rows = []
    for env in data.envs:
        for a, b in pairs:
            xa, xb = data.scores(env, a, "final"), data.scores(env, b, "final")
            if len(xa) < 2 or len(xb) < 2:
                continue
            n = seeds_to_separate(xa, xb)
            done = [rundir.read_done(r.path) or {} for m in (a, b) for r in data.runs(env, m)]
            walls = [d["wall_time_s"] for d in done if d.get("wall_time_s")]
            wall = float(np.median(walls)) if walls else None
            rows.append(
                {
                    "env": env,
                    "method": a,
                    "baseline": b,
                    "n": (len(xa), len(xb)),
                    "mean": float(np.mean(xa)),
                    "mean_baseline": float(np.mean(xb)),
                    "delta": float(np.mean(xa) - np.mean(xb)),
                    "pooled_sd": pooled_sd(xa, xb),
                    "seeds_to_separate": n,
                    "run_wall_s": wall,
                    "cpu_h_to_separate": None if n is None or wall is None else 2 * n * wall / 3600,
                }
            )
    return rows
