"""Seeds needed to separate two methods (vaml_ext.exp.aggregate.power)."""

import json
import math

import numpy as np
import pytest

from tests.exp.test_aggregate import write_run
from vaml_ext.exp.aggregate.power import POWER, Z95, pooled_sd, seeds_to_separate, separation_table
from vaml_ext.exp.claims import MIN_SEEDS


def _ci(mean, sd, n):
    h = Z95 * sd / math.sqrt(n)
    return mean - h, mean + h


def _power(delta, sd, n):
    """P(normal 95% CIs of two n-seed means are disjoint) when the true difference is delta:
    the observed difference ~ N(delta, sd sqrt(2/n)) must exceed 2 * 1.96 sd / sqrt(n)."""
    bar, se = 2 * Z95 * sd / math.sqrt(n), sd * math.sqrt(2 / n)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    return (1 - phi((bar - abs(delta)) / se)) + phi((-bar - abs(delta)) / se)


def test_seeds_to_separate_is_the_first_n_with_80_percent_power():
    x, y = [0.0, 2.0, 1.0, 3.0], [0.5, 2.5, 1.5, 3.5]  # same spread, delta = -0.5
    sd, delta = pooled_sd(x, y), np.mean(x) - np.mean(y)
    n = seeds_to_separate(x, y)
    assert sd == pytest.approx(np.std(x, ddof=1)) and n > MIN_SEEDS
    assert _power(delta, sd, n) >= POWER > _power(delta, sd, n - 1)
    # the old rule (CIs the observed difference apart just disjoint) had ~50% power
    n50 = math.ceil((2 * Z95 * sd / abs(delta)) ** 2)
    assert _power(delta, sd, n50) == pytest.approx(0.5, abs=0.03)
    lo_a, hi_a = _ci(np.mean(x), sd, n)
    lo_b, hi_b = _ci(np.mean(y), sd, n)
    assert hi_a < lo_b  # at n, CIs the observed difference apart are disjoint with room to spare


def test_edge_cases():
    assert seeds_to_separate([1.0, 2.0], [1.0, 2.0]) is None  # no difference: nothing separates it
    assert seeds_to_separate([1.0, 1.0], [2.0, 2.0]) == MIN_SEEDS  # no spread: the rule's minimum
    assert seeds_to_separate([0.0, 1.0], [100.0, 101.0]) == MIN_SEEDS  # never below the rule's minimum
    with pytest.raises(ValueError, match=">= 2 values"):
        pooled_sd([1.0], [1.0, 2.0])


def _loaded(sweep_dir):
    from vaml_ext.exp.aggregate.loading import load_runs
    from vaml_ext.exp.aggregate.sweep import SweepData

    return SweepData(load_runs(sweep_dir, warn=lambda m: None).runs, 50, 250)


def test_separation_table_reads_a_sweep(tmp_path):
    for seed, (a, b) in enumerate([(10.0, 8.0), (12.0, 9.0), (11.0, 7.0)]):
        write_run(tmp_path, "hopper", "ma_l1", seed, [0, 100], [0.0, a], figure="fig4")
        write_run(tmp_path, "hopper", "ma_l1_naive", seed, [0, 100], [0.0, b], figure="fig4")
    assert (
        separation_table(_loaded(tmp_path), [("ma_l1", "ma_l1_naive")])[0]["cpu_h_to_separate"] is None
    )  # no wall-clock
    for done in tmp_path.glob("*/*/seed*/done.json"):
        done.write_text(json.dumps({**json.loads(done.read_text()), "wall_time_s": 1800.0}))
    rows = separation_table(_loaded(tmp_path), [("ma_l1", "ma_l1_naive"), ("ma_l1", "mle")])
    assert len(rows) == 1  # no mle runs: that pair is left out
    r = rows[0]
    assert (r["env"], r["method"], r["baseline"], r["n"]) == ("hopper", "ma_l1", "ma_l1_naive", (3, 3))
    assert r["delta"] == pytest.approx(3.0) and r["mean"] == pytest.approx(11.0)
    assert r["seeds_to_separate"] == seeds_to_separate([10, 12, 11], [8, 9, 7])
    assert r["run_wall_s"] == 1800.0
    assert r["cpu_h_to_separate"] == pytest.approx(r["seeds_to_separate"])  # 2 methods x n x 0.5 h
