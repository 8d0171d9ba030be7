"""``python -m vaml_ext.exp.aggregate <sweep_dir> [--out DIR] [--reps N]
[--include-unfinished] [--seed S] [--max-points K]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vaml_ext.exp.aggregate.loading import AggregateError
from vaml_ext.exp.aggregate.pipeline import aggregate
from vaml_ext.exp.aggregate.report import _ci


def _summary(res: dict) -> str:
    f = res["final"]
    lines = [
        f"aggregated {res['n_runs']} runs ({res['n_unfinished_used']} unfinished used, "
        f"{res['n_unfinished'] - res['n_unfinished_used']} unfinished excluded, {len(res['skipped'])} skipped); "
        f"figure {res['figure'] or 'n/a'}"
    ]
    for _, r in f.iterrows():
        lines.append(
            f"  {r['env']:>12} {r['method']:<14} final IQM {_ci(r['iqm'], r['iqm_lo'], r['iqm_hi'])} (n={r['n_seeds']})"
        )
    for c in res["claims"]:
        lines.append(f"  claim {c['id']}: {c['verdict']} -- {c['claim']}")
    lines += [f"  {n}" for n in res["notes"]]
    lines.append(f"report: {res['report']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m vaml_ext.exp.aggregate",
        description="Aggregate a sweep directory into curves, tables, PoI, figures and "
        "a report that checks the paper's claims.",
    )
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output dir (default <sweep_dir>/report)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    p.add_argument("--include-unfinished", action="store_true", help="also use runs without done.json")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--max-points", type=int, default=250, help="max grid points per env curve (default 250)")
    a = p.parse_args(argv)
    try:
        res = aggregate(
            a.sweep_dir,
            a.out,
            reps=a.reps,
            include_unfinished=a.include_unfinished,
            seed=a.seed,
            max_points=a.max_points,
            log=lambda m: print(m, file=sys.stderr),
        )
    except AggregateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_summary(res))
    return 0
