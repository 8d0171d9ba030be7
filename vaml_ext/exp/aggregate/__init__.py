"""Aggregate a sweep into curves, a final-performance table, PoI over MLE, figures and a
report that sets each of the paper's claims (paper §5, Figures 1-4) next to the measured result.

    python -m vaml_ext.exp.aggregate <sweep_dir> [--out DIR] [--reps N]
        [--include-unfinished] [--seed S] [--max-points K]

Reads every run directory under ``sweep_dir`` (format: :mod:`vaml_ext.runlog.rundir`) and
writes to ``--out`` (default ``<sweep_dir>/report``):

* ``curves.csv`` -- ``env, method, env_steps, iqm, iqm_lo, iqm_hi, mean, mean_lo, mean_hi,
  n_seeds`` on a common env-step grid per env;
* ``final.csv``  -- per env and method: final return (last evaluation of each seed) IQM
  and mean with 95% CIs, seeds, the env steps of those last evaluations, and the AUC;
* ``poi.csv``    -- probability of improvement of each value-aware method over ``mle``,
  per env and over all envs (``env = all``), with 95% CIs;
* ``curves.png``, ``poi.png``, ``claims.json`` and ``report.md``.

In Python: ``aggregate(sweep_dir, out_dir=None, reps=2000, ...)`` returns the paths it
wrote and the tables (pandas DataFrames).

Modules, one concern each: :mod:`.stats` (IQM / mean / PoI and rliable's bootstrap),
:mod:`.loading` (run directories -> runs), :mod:`.sweep` (grids and the bootstrapped
tables), :mod:`.plots`, :mod:`.report` (``report.md``), :mod:`.pipeline`
(:func:`aggregate`) and :mod:`.cli`.

Statistics. Point estimates and 95% percentile CIs come from rliable's stratified
bootstrap over seeds. The statistics are rliable.metrics' ``aggregate_iqm``,
``aggregate_mean`` and ``probability_of_improvement``, computed by the exact
re-implementations in :mod:`.stats` (tests check them against rliable's; scipy's
per-call overhead made rliable's own functions ~50x slower inside the bootstrap).
rliable draws its bootstrap indices from NumPy's global RNG: ``--seed`` seeds it (its
previous state is restored afterwards).
"""

from vaml_ext.exp.aggregate.cli import main
from vaml_ext.exp.aggregate.loading import AggregateError, Loaded, Run, load_runs
from vaml_ext.exp.aggregate.pipeline import aggregate
from vaml_ext.exp.aggregate.plots import plot_curves, plot_poi
from vaml_ext.exp.aggregate.report import write_report
from vaml_ext.exp.aggregate.stats import (
    CI,
    interval_estimates,
    iqm,
    iqm_columns,
    probability_of_improvement,
    rliable_modules,
)
from vaml_ext.exp.aggregate.sweep import SweepData, env_grid, values_on_grid

__all__ = [
    "CI",
    "AggregateError",
    "Loaded",
    "Run",
    "SweepData",
    "aggregate",
    "env_grid",
    "interval_estimates",
    "iqm",
    "iqm_columns",
    "load_runs",
    "main",
    "plot_curves",
    "plot_poi",
    "probability_of_improvement",
    "rliable_modules",
    "values_on_grid",
    "write_report",
]
