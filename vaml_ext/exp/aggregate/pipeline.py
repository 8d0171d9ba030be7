"""``aggregate()``: load a sweep, compute the tables under a fixed bootstrap seed, evaluate
the paper's claims and write the report files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vaml_ext.exp.aggregate.loading import AggregateError, load_runs
from vaml_ext.exp.aggregate.plots import plot_curves, plot_poi, plot_ratios
from vaml_ext.exp.aggregate.power import separation_table
from vaml_ext.exp.aggregate.report import write_report
from vaml_ext.exp.aggregate.sweep import SweepData
from vaml_ext.exp.claims import evaluate_claims
from vaml_ext.runlog import rundir


def write_steps_to_goal(loaded, path: Path, report: Path) -> Path:
    """Figure 1: env steps to reach the goal per method and grid size
    (:mod:`vaml_ext.gridworld.steps`), written to ``path`` and appended to ``report``."""
    from vaml_ext.gridworld.steps import markdown_table, steps_to_goal

    rows = [
        {"size": int(r.env.removeprefix("grid")), "method": r.method, "seed": r.seed, "env_steps": s, "return": v}
        for r in loaded.runs
        if r.env.startswith("grid")
        for s, v in zip(r.steps, r.returns)
    ]
    md = markdown_table(steps_to_goal(rows))
    path.write_text(md)
    with open(report, "a") as f:
        f.write("\n## Steps to reach the goal\n\n" + md)
    return path


def aggregate(
    sweep_dir,
    out_dir=None,
    reps: int = 2000,
    include_unfinished: bool = False,
    seed: int = 0,
    max_points: int = 250,
    log: Callable[[str], None] = print,
    plots: bool = True,
) -> dict:
    """Aggregate ``sweep_dir``; write the report files to ``out_dir`` (default
    ``<sweep_dir>/report``). Returns the written paths (``out_dir``, ``report``,
    ``curves_csv``, ``final_csv``, ``poi_csv``, ``versus_csv``, ``claims_json``,
    ``curves_png``, ``poi_png``, ``ratios_png`` -- None where not written), the tables
    (``curves``, ``final``, ``poi``, ``versus`` as pandas DataFrames), ``claims`` (list of
    dicts), ``warnings``, ``notes`` and run counts. Raises :class:`AggregateError` on bad input."""
    import pandas as pd

    if reps < 1:
        raise AggregateError(f"--reps must be >= 1, got {reps}")
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    warnings: list[str] = []

    def warn(msg):
        warnings.append(msg)
        log(msg)

    loaded = load_runs(sweep_dir, include_unfinished, warn)
    if loaded.unfinished and not include_unfinished:
        warn(
            f"note: {len(loaded.unfinished)} unfinished run(s) excluded (no {rundir.DONE_FILE}); "
            "--include-unfinished uses them"
        )
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        data = SweepData(loaded.runs, reps, max_points)
        curves = data.curves()
        final = data.final_table()
        poi, poi_notes = data.poi_table()
        versus = data.versus_table()
        claims = evaluate_claims(loaded.figure, data)
    finally:
        np.random.set_state(state)

    out.mkdir(parents=True, exist_ok=True)
    curve_cols = ["env", "method", "env_steps", "iqm", "iqm_lo", "iqm_hi", "mean", "mean_lo", "mean_hi", "n_seeds"]
    final_cols = [
        "env",
        "method",
        "n_seeds",
        "seeds",
        "iqm",
        "iqm_lo",
        "iqm_hi",
        "mean",
        "mean_lo",
        "mean_hi",
        "final_steps_min",
        "final_steps_max",
        "auc_horizon",
        "auc_iqm",
        "auc_lo",
        "auc_hi",
    ]
    poi_cols = ["env", "method", "baseline", "poi", "poi_lo", "poi_hi", "n_seeds", "n_seeds_baseline", "n_envs"]
    versus_cols = [
        "env",
        "method",
        "baseline",
        "n_seeds",
        "n_seeds_baseline",
        "iqm",
        "iqm_lo",
        "iqm_hi",
        "iqm_baseline",
        "iqm_baseline_lo",
        "iqm_baseline_hi",
        "ratio",
        "ratio_lo",
        "ratio_hi",
        "learned",
        "learned_baseline",
        "reading",
    ]
    tables = {
        "curves": pd.DataFrame(curves, columns=curve_cols),
        "final": pd.DataFrame(final, columns=final_cols),
        "poi": pd.DataFrame(poi, columns=poi_cols),
        "versus": pd.DataFrame(versus, columns=versus_cols),
    }
    claims_json = out / "claims.json"
    files: dict[str, Path | None] = {
        "curves_csv": out / "curves.csv",
        "final_csv": out / "final.csv",
        "poi_csv": out / "poi.csv",
        "versus_csv": out / "versus.csv",
        "claims_json": claims_json,
        "curves_png": None,
        "poi_png": None,
        "ratios_png": None,
    }
    for name in ("curves", "final", "poi", "versus"):
        tables[name].to_csv(out / f"{name}.csv", index=False)
    claims_json.write_text(json.dumps(claims, indent=2) + "\n")
    title = f"{sweep_dir.name}" + (f" ({loaded.figure})" if loaded.figure else "")
    if plots:
        files["curves_png"] = out / "curves.png"
        plot_curves(data, curves, out / "curves.png", title)
        if poi:
            files["poi_png"] = out / "poi.png"
            plot_poi(poi, data.methods, out / "poi.png", title)
        if any(np.isfinite(r["ratio"]) for r in versus):
            files["ratios_png"] = out / "ratios.png"
            plot_ratios(versus, data.methods, out / "ratios.png", title)
    files["report"] = out / "report.md"
    # planning figures for every pair the PoI table shows and every final-return pair a claim compared
    compared = {(x["method"], x["baseline"]) for c in claims for x in c["compared"] if x["metric"] == "final"}
    separation = separation_table(data, sorted({(r["method"], r["baseline"]) for r in poi} | compared))
    write_report(
        out / "report.md",
        sweep_dir,
        loaded,
        data,
        final,
        poi,
        poi_notes,
        versus,
        claims,
        files,
        reps,
        seed,
        include_unfinished,
        max_points,
        separation,
    )

    if loaded.figure == "fig1":  # the gridworld's steps-to-goal table (paper §5.1)
        files["steps_md"] = write_steps_to_goal(loaded, out / "steps_to_goal.md", out / "report.md")
    n_unf_used = sum(not r.done for r in loaded.runs)
    result = {
        "out_dir": out,
        **files,
        **tables,
        "claims": claims,
        "separation": separation,
        "warnings": warnings,
        "notes": poi_notes,
        "figure": loaded.figure,
        "n_runs": len(loaded.runs),
        "n_unfinished": len(loaded.unfinished),
        "n_unfinished_used": n_unf_used,
        "skipped": loaded.skipped,
        "unfinished": [str(r.path) for r in loaded.unfinished],
    }
    return result
