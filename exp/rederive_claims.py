"""Re-derive a committed sweep report's claim verdicts under the current protocol
(:mod:`vaml_ext.exp.claims`) from the report's own tables, without its run directories.

    python exp/rederive_claims.py exp/slbo/fig2_medium exp/slbo/fig4_medium

Reads ``final.csv`` (per env x method: final-return IQM, its 95% CI, the seed count),
``curves.csv`` (the same per evaluation step: its first row is the initial policy) and
``claims.json`` (the verdicts as committed), and prints one Markdown table per report:
claim, verdict as committed, verdict now. What the tables cannot give: the IQM *ratio*'s
CI (it needs the per-seed returns), so an equivalence claim that reaches the ratio test is
reported "inconclusive (baseline IQM CI not above 0: no ratio margin)" -- with fewer than
``MIN_SEEDS`` seeds a comparison stops before it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vaml_ext.exp.claims import MARGIN, MIN_SEEDS, ClaimData, Stat, canonical_env, evaluate_claims  # noqa: E402


class ReportTables(ClaimData):
    """Claim input from a report's ``final.csv`` and ``curves.csv``."""

    def __init__(self, report_dir: Path):
        self.final: dict[tuple[str, str], Stat] = {}
        self.first: dict[tuple[str, str], Stat] = {}
        with open(report_dir / "final.csv") as f:
            for r in csv.DictReader(f):
                key = (canonical_env(r["env"]), r["method"])
                self.final[key] = Stat(float(r["iqm"]), float(r["iqm_lo"]), float(r["iqm_hi"]), int(r["n_seeds"]))
        first_step: dict[tuple[str, str], float] = {}
        with open(report_dir / "curves.csv") as f:
            for r in csv.DictReader(f):
                key, step = (canonical_env(r["env"]), r["method"]), float(r["env_steps"])
                if key not in first_step or step < first_step[key]:
                    first_step[key] = step
                    self.first[key] = Stat(
                        float(r["iqm"]), float(r["iqm_lo"]), float(r["iqm_hi"]), int(float(r["n_seeds"]))
                    )
        self.envs = sorted({e for e, _ in self.final})

    def stat(self, env, method, metric="final", horizon=None) -> Stat | None:
        if metric != "final":
            raise SystemExit(f"metric {metric!r}: only final-return claims can be re-derived from final.csv")
        return self.final.get((env, method))

    def horizon(self, env, methods):  # pragma: no cover - final-return claims only
        return None

    def initial(self, env, method) -> Stat | None:
        return self.first.get((env, method))


def table(report_dir: Path) -> str:
    data = ReportTables(report_dir)
    committed = {c["id"]: c for c in json.loads((report_dir / "claims.json").read_text())}
    figure = next(iter(committed.values()))["figure"] if committed else None
    rows = ["| claim | verdict as committed | verdict under the current protocol |", "|---|---|---|"]
    for c in evaluate_claims(figure, data):
        old = committed.get(c["id"], {}).get("verdict", "-")
        rows.append(f"| {c['id']} {c['claim']} | {old} | **{c['verdict']}** |")
    learned = sorted(f"{e}/{m}" for (e, m), s in data.final.items() if s.lo > data.first[(e, m)].hi)
    rows.append("")
    rows.append(
        f"Learned (final-return CI above the first evaluation's): {', '.join(learned) or 'none'}. "
        f"Seeds per method: {sorted({s.n for s in data.final.values()})} (decisions need >= {MIN_SEEDS}; "
        f"equivalence margin 1 ± {MARGIN:g})."
    )
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="committed report directories (final.csv, curves.csv)")
    a = p.parse_args(argv)
    for d in a.reports:
        for name in ("final.csv", "curves.csv", "claims.json"):
            if not (d / name).is_file():
                raise SystemExit(f"{d}: no {name} (a report directory written by vaml_ext.exp.aggregate?)")
        print(f"### {d}\n\n{table(d)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
