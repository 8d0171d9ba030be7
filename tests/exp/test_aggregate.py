"""Sweep aggregation (issue #6): synthetic sweeps written with the run-directory helpers;
statistics, PoI, unfinished/empty runs, claim verdicts, report, figures and the CLI."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vaml_ext.exp.aggregate import (
    AggregateError,
    aggregate,
    iqm,
    iqm_columns,
    probability_of_improvement,
    rliable_modules,
)
from vaml_ext.exp.claims import (
    CLAIMS,
    MARGIN,
    MIN_SEEDS,
    NOT_TESTABLE,
    ClaimData,
    Stat,
    canonical_env,
    cell_reading,
    evaluate_claims,
    norm_figure,
)
from vaml_ext.runlog import rundir

REPS = 200
REPO = Path(__file__).resolve().parents[2]


def write_run(root, env, method, seed, steps, returns, figure="fig2", done=True, commit="c0ffee", base=None):
    d = Path(root) / env / method / f"seed{seed}"
    cfg = {
        "figure": figure,
        "preset": "test",
        "backend": "synthetic",
        "env": env,
        "method": method,
        "seed": seed,
        "provenance": {"commit": commit, "dirty": False},
    }
    if base is not None:
        cfg["base"] = base
    rundir.write_run_config(d, cfg)
    log = rundir.EvalLog(d)
    for t, r in zip(steps, returns):
        log.write({"env_steps": t, "return": r, "wall_time_s": 0.1 * t})
    if done:
        rundir.write_done(d, {"final_return": returns[-1] if len(returns) else None})
    return d


def write_cell(root, env, method, level, n_seeds=5, spread=2.0, figure="fig2", steps=(0, 500, 1000), flat=False, **kw):
    """``n_seeds`` runs whose return ramps linearly to ``level + offset`` at the last step
    (``flat``: stays there from the first evaluation on, i.e. never learns); the offsets are
    symmetric about 0, so IQM and mean of every column equal the level."""
    offs = np.linspace(-spread, spread, n_seeds)
    steps = list(steps)
    for s, off in enumerate(offs):
        rets = [(level + off) * (1.0 if flat else t / steps[-1]) for t in steps]
        write_run(root, env, method, s, steps, rets, figure=figure, **kw)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- statistics
def test_statistics_equal_rliable_metrics():
    _, metrics = rliable_modules()
    rng = np.random.default_rng(0)
    for n in range(1, 12):
        x = np.round(rng.normal(size=(n, 3)), 1)  # rounding makes ties
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12, abs=1e-12)
        cols = iqm_columns(x)
        for j in range(3):
            assert cols[j] == pytest.approx(metrics.aggregate_iqm(x[:, j : j + 1]), rel=1e-12, abs=1e-12)
        y = np.round(rng.normal(size=(max(1, n - 2), 3)), 1)
        assert probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
        assert probability_of_improvement(x, x) == metrics.probability_of_improvement(x, x) == 0.5


def test_cis_contain_truth_and_poi(tmp_path):
    write_cell(tmp_path, "hopper", "mle", 100.0, n_seeds=8)
    write_cell(tmp_path, "hopper", "ma_l1", 200.0, n_seeds=8)
    write_cell(tmp_path, "hopper", "ma_vaml", 100.0, n_seeds=8)  # same distribution as mle
    res = aggregate(tmp_path, reps=REPS, plots=False, log=lambda m: None)
    final = res["final"].set_index("method")
    for m, true in (("mle", 100.0), ("ma_l1", 200.0), ("ma_vaml", 100.0)):
        r = final.loc[m]
        assert r["n_seeds"] == 8
        assert r["iqm"] == pytest.approx(true) and r["mean"] == pytest.approx(true)
        assert r["iqm_lo"] <= true <= r["iqm_hi"] and r["mean_lo"] <= true <= r["mean_hi"]
        assert r["iqm_hi"] - r["iqm_lo"] < 4.0  # the CI is not vacuous: spread is +-2
    assert final.loc["ma_l1", "iqm_lo"] > final.loc["mle", "iqm_hi"]
    # AUC of a linear ramp over steps 0, 500, 1000 = level / 2
    assert final.loc["ma_l1", "auc_iqm"] == pytest.approx(100.0)

    curves = res["curves"]
    last = curves[(curves.method == "ma_l1") & (curves.env_steps == 1000)].iloc[0]
    assert last["iqm"] == pytest.approx(200.0) and last["iqm_lo"] <= 200.0 <= last["iqm_hi"]
    assert last["n_seeds"] == 8
    assert sorted(curves.env_steps.unique()) == [0, 500, 1000]

    poi = res["poi"].set_index("method")
    assert set(poi.index) == {"ma_l1", "ma_vaml"}  # one env: no "all" row
    assert poi.loc["ma_l1", "poi"] == pytest.approx(1.0) and poi.loc["ma_l1", "poi_lo"] > 0.9
    assert poi.loc["ma_vaml", "poi"] == pytest.approx(0.5)
    assert poi.loc["ma_vaml", "poi_lo"] < 0.5 < poi.loc["ma_vaml", "poi_hi"]


def test_poi_over_all_envs(tmp_path):
    for env in ("hopper", "swimmer"):
        write_cell(tmp_path, env, "mle", 10.0)
        write_cell(tmp_path, env, "ma_l1", 50.0)
    res = aggregate(tmp_path, reps=REPS, plots=False, log=lambda m: None)
    rows = {r.env: r for r in res["poi"].itertuples()}
    assert set(rows) == {"hopper", "swimmer", "all"}
    assert rows["all"].poi == pytest.approx(1.0) and rows["all"].n_envs == 2


def test_poi_of_the_refit_over_its_naive_ablation(tmp_path):
    write_cell(tmp_path, "hopper", "mle", 100.0, n_seeds=6, figure="fig4")
    write_cell(tmp_path, "hopper", "ma_l1_naive", 50.0, n_seeds=6, figure="fig4")
    write_cell(tmp_path, "hopper", "ma_l1", 150.0, n_seeds=6, figure="fig4")
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    poi = {(r.method, r.baseline): r for r in res["poi"].itertuples()}
    assert set(poi) == {("ma_l1", "mle"), ("ma_l1_naive", "mle"), ("ma_l1", "ma_l1_naive")}
    assert poi[("ma_l1", "ma_l1_naive")].poi == pytest.approx(1.0)
    assert poi[("ma_l1_naive", "mle")].poi == pytest.approx(0.0)
    assert poi[("ma_l1", "ma_l1_naive")].n_seeds_baseline == 6
    report = res["report"].read_text()
    assert "| hopper | ma_l1 | ma_l1_naive |" in report
    # the planning table: both seed spreads are the same +-2 ramp, delta 100 -> 2 seeds suffice
    assert "Seeds that would separate each pair" in report
    assert "| hopper | ma_l1 | ma_l1_naive | 150 / 50 | +100 |" in report


def test_unshared_eval_steps_use_last_eval_at_or_before(tmp_path):
    write_run(tmp_path, "hopper", "mle", 0, [0, 100, 200], [0.0, 1.0, 2.0])
    write_run(tmp_path, "hopper", "mle", 1, [0, 150, 250], [0.0, 10.0, 20.0])
    res = aggregate(tmp_path, reps=REPS, plots=False, log=lambda m: None)
    c = res["curves"].set_index("env_steps")
    assert list(c.index) == [0, 100, 150, 200, 250]
    assert c.loc[150, "mean"] == pytest.approx((1.0 + 10.0) / 2)  # seed 0's value at 100
    assert c.loc[200, "mean"] == pytest.approx((2.0 + 10.0) / 2)  # seed 1's value at 150
    assert c.loc[250, "n_seeds"] == 1 and c.loc[250, "mean"] == pytest.approx(20.0)  # seed 0 stopped at 200
    assert "different evaluation steps" in Path(res["report"]).read_text()


# ----------------------------------------------------------------------------- runs
def test_unfinished_excluded_and_listed_unless_included(tmp_path):
    write_cell(tmp_path, "hopper", "mle", 100.0, n_seeds=4)
    write_run(tmp_path, "hopper", "mle", 7, [0, 500], [0.0, 40.0], done=False)
    msgs = []
    res = aggregate(tmp_path, reps=REPS, plots=False, log=msgs.append)
    assert res["final"].iloc[0]["n_seeds"] == 4
    assert res["n_unfinished"] == 1 and res["unfinished"][0].endswith("seed7")
    assert any("unfinished" in m for m in msgs)
    report = Path(res["report"]).read_text()
    assert "hopper/mle/seed7" in report and "1 (7)" in report  # listed, and in the run-count table

    res = aggregate(tmp_path, reps=REPS, plots=False, include_unfinished=True, log=lambda m: None)
    assert res["final"].iloc[0]["n_seeds"] == 5
    assert res["n_unfinished_used"] == 1


def test_empty_eval_skipped_with_warning(tmp_path):
    write_cell(tmp_path, "hopper", "mle", 100.0, n_seeds=3)
    write_run(tmp_path, "hopper", "mle", 9, [], [])  # header-only returns.csv
    msgs = []
    res = aggregate(tmp_path, reps=REPS, plots=False, log=msgs.append)
    assert res["skipped"] == [("hopper/mle/seed9", "empty returns.csv")]
    assert any("seed9" in m and "empty returns.csv" in m for m in msgs)
    assert "`hopper/mle/seed9`: empty returns.csv" in Path(res["report"]).read_text()
    assert res["final"].iloc[0]["n_seeds"] == 3
    assert "| hopper | mle | 3 (0 1 2) | 0 (-) | 1 (9) | 0 (-) |" in Path(res["report"]).read_text()


def test_bad_input_fails_clearly(tmp_path):
    with pytest.raises(AggregateError, match="no runs under"):
        aggregate(tmp_path, reps=REPS, log=lambda m: None)
    write_cell(tmp_path / "a", "hopper", "mle", 1.0, figure="fig2")
    write_cell(tmp_path / "b", "hopper", "ma_l1", 1.0, figure="fig3")
    with pytest.raises(AggregateError, match="mixed figures"):
        aggregate(tmp_path, reps=REPS, log=lambda m: None)
    only_unfinished = tmp_path / "u"
    write_run(only_unfinished, "hopper", "mle", 0, [0, 1], [0.0, 1.0], done=False)
    with pytest.raises(AggregateError, match="--include-unfinished"):
        aggregate(only_unfinished, reps=REPS, log=lambda m: None)


def test_mbpo_base_is_reported_and_never_mixed(tmp_path):
    from vaml_ext.exp.bases import pin

    paper, current = pin("paper"), pin("current")
    write_cell(tmp_path / "a", "hopper", "mle", 1.0, figure="fig3", base=paper)
    write_cell(tmp_path / "a", "hopper", "ma_l1", 1.2, figure="fig3", base=paper)
    res = aggregate(tmp_path / "a", reps=REPS, log=lambda m: None)
    assert f"; MBPO base: paper ({paper['package']} {paper['version']})" in Path(res["report"]).read_text()
    write_cell(tmp_path / "b", "hopper", "mle", 1.0, figure="fig3", base=current)
    write_cell(tmp_path / "b", "hopper", "ma_l1", 1.2, figure="fig3", base=paper)
    with pytest.raises(
        AggregateError, match=r"mixed MBPO bases.*current \(mbrl 0\.2\.0\).*paper \(mbrl 0\.2\.0\.dev3\)"
    ):
        aggregate(tmp_path / "b", reps=REPS, log=lambda m: None)


def test_cli_empty_dir_exits_nonzero(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "vaml_ext.exp.aggregate", str(tmp_path), "--reps", "10"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode != 0
    assert "error: no runs under" in p.stderr and "Traceback" not in p.stderr


def test_single_seed_and_single_method_degenerate(tmp_path):
    write_run(tmp_path, "hopper", "mle", 0, [0, 100], [0.0, 5.0])
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    r = res["final"].iloc[0]
    assert r["n_seeds"] == 1 and r["iqm_lo"] == r["iqm"] == r["iqm_hi"] == 5.0
    assert res["poi"].empty and res["poi_png"] is None
    report = Path(res["report"]).read_text()
    assert "One seed only" in report and "degenerate" in report
    assert "no probability of improvement" in report
    assert Path(res["curves_png"]).is_file()


# ----------------------------------------------------------------------------- claims
def test_claims_on_constructed_fig2_sweep(tmp_path):
    levels = {  # env: mle, ma_l1, ma_vaml, slbo (final returns; 5 seeds, +-2)
        "hopper": (100, 200, 300, 150),  # ma_l1 clearly below ma_vaml -> 2a does not hold
        "swimmer": (100, 300, 100, 150),  # ma_vaml == mle -> 2b inconclusive (CIs overlap)
        "ant": (100, 200, 250, 150),  # excluded from 2a
        "half_cheetah": (100, 200, 150, 150),
    }
    for env, lv in levels.items():
        for m, level in zip(("mle", "ma_l1", "ma_vaml", "slbo"), lv):
            write_cell(tmp_path, env, m, float(level), n_seeds=MIN_SEEDS)
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    verdicts = {c["id"]: c for c in res["claims"]}
    assert set(verdicts) == {"2a", "2b", "2b-authors", "2c"}
    assert verdicts["2b-authors"]["verdict"] == "inconclusive (method missing)"  # mle_va_slbo not run
    assert verdicts["2a"]["verdict"] == "does not hold"
    assert "hopper: ma_l1 200" in verdicts["2a"]["evidence"] and "below" in verdicts["2a"]["evidence"]
    assert verdicts["2b"]["verdict"] == "inconclusive (CIs overlap)"
    assert verdicts["2c"]["verdict"] == "holds"  # ma_l1 > slbo on swimmer and hopper
    assert "envs missing" not in verdicts["2c"]["evidence"]
    assert "envs missing: walker, pendulum, acrobot" in verdicts["2b"]["evidence"]
    assert "halfcheetah" in set(res["final"].env)  # half_cheetah matched case/underscore-insensitively
    compared_2c = {(x["env"], x["method"], x["baseline"], x["outcome"]) for x in verdicts["2c"]["compared"]}
    assert compared_2c == {("swimmer", "ma_l1", "slbo", "above"), ("hopper", "ma_l1", "slbo", "above")}
    # the planning table covers the claims' pairs too, not only the PoI table's (vs mle)
    separated = {(r["env"], r["method"], r["baseline"]) for r in res["separation"]}
    assert ("hopper", "ma_l1", "ma_vaml") in separated and ("swimmer", "ma_l1", "slbo") in separated
    assert ("hopper", "ma_vaml", "mle") in separated
    assert not any(b == a for _, a, b in separated)

    report = Path(res["report"]).read_text()
    for c in res["claims"]:
        assert c["claim"] in report and c["verdict"] in report
    for name in ("curves.png", "poi.png"):
        assert f"]({name})" in report
        assert (Path(res["out_dir"]) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"`c0ffee` ({16 * MIN_SEEDS} runs)" in report
    assert "envs walker, reacher, pendulum, acrobot; methods mle_va_slbo" in report  # figure's, not run
    for key in ("curves_csv", "final_csv", "poi_csv"):
        assert read_csv(res[key])
    assert {"all"} <= set(res["poi"].env)


class StubData(ClaimData):
    """Claim input from a dict ``{(env, method): Stat}``; AUC stats keyed with the horizon;
    ``initials`` ``{(env, method): Stat}`` (absent: learning unknown, the gate is skipped).
    The IQM ratio's CI by interval arithmetic on the two CIs (conservative)."""

    def __init__(self, stats, horizons=None, initials=None):
        self.stats, self.horizons, self.initials = stats, horizons or {}, initials or {}
        self.envs = sorted({e for e, *_ in stats})

    def stat(self, env, method, metric="final", horizon=None):
        if metric == "auc":
            return self.stats.get((env, method, "auc", horizon))
        return self.stats.get((env, method))

    def horizon(self, env, methods):
        return self.horizons.get(env)

    def initial(self, env, method):
        return self.initials.get((env, method))

    def ratio(self, env, a, b, metric="final", horizon=None):
        sa, sb = self.stat(env, a, metric, horizon), self.stat(env, b, metric, horizon)
        if sa is None or sb is None or sb.lo <= 0:
            return None
        return sa.iqm / sb.iqm, sa.lo / sb.hi, sa.hi / sb.lo


def S(v, n=MIN_SEEDS, w=1.0):
    return Stat(iqm=v, lo=v - w, hi=v + w, n=n)


def verdicts(fig, data):
    return {c["id"]: c["verdict"] for c in evaluate_claims(fig, data)}


def test_claim_rules_fig3_fig4_and_inconclusive_reasons():
    d = StubData(
        {
            ("hopper", "mle"): S(100, w=2),
            ("hopper", "ma_l1"): S(101, w=2),
            ("hopper", "ma_vaml"): S(99, w=2),
            ("ant", "mle"): S(10),
            ("ant", "ma_l1"): S(5),
            ("ant", "ma_vaml"): S(5, n=MIN_SEEDS - 1),
        }
    )
    v = verdicts("fig3", d)
    assert v["3a"] == "holds"  # both ratio CIs inside 1 +- MARGIN
    assert v["3b"] == f"inconclusive (too few seeds (< {MIN_SEEDS}))"
    d.stats[("ant", "ma_vaml")] = S(5)
    assert verdicts("fig3", d)["3b"] == "holds"
    d.stats[("hopper", "ma_vaml")] = S(92, w=6)  # CIs overlap, but the ratio CI reaches below 1 - MARGIN
    assert verdicts("fig3", d)["3a"] == f"inconclusive (ratio CI straddles the margin 1 ± {MARGIN:g})"
    d.stats[("hopper", "ma_vaml")] = S(50, w=2)  # ratio CI entirely below 1 - MARGIN
    assert verdicts("fig3", d)["3a"] == "does not hold"

    envs = ["hopper", "walker", "swimmer", "pendulum"]
    st = {}
    for e in envs:
        st[(e, "mle")] = S(10)
        st[(e, "ma_l1_naive")] = S(10)
        st[(e, "ma_l1")] = S(20)
    st[("pendulum", "ma_l1")] = S(5)  # excluded by "but Pendulum"
    v = verdicts("fig4", StubData(st))
    assert v == {
        "4a": "holds",
        "4b": "inconclusive (ratio CI reaches above 1 + 0.1)",  # naive = mle, wide CIs
        "4b-authors": "inconclusive (env missing)",  # mle_va_slbo not in the data
    }
    st2 = {**st, **{(e, m): S(10, w=0.2) for e in envs for m in ("mle", "ma_l1_naive")}}
    assert verdicts("fig4", StubData(st2))["4b"] == "holds"  # naive within 1 +- MARGIN of mle everywhere
    st[("hopper", "ma_l1_naive")] = S(30)
    st[("walker", "ma_l1_naive")] = S(30)  # naive > mle on 2 of 4 envs
    v = verdicts("fig4", StubData(st))
    assert v == {"4a": "does not hold", "4b": "does not hold", "4b-authors": "inconclusive (env missing)"}
    assert verdicts("fig4", StubData({("cartpole", "mle"): S(1)}))["4b"] == "inconclusive (env missing)"


def test_claim_rules_fig1():
    st, hz = {}, {}
    for size, (mle_auc, ub, direct) in {5: (1.2, 1.3, 1.0), 8: (0.8, 1.2, 0.9), 16: (0.2, 1.0, 0.5)}.items():
        env = f"grid{size}"
        hz[env] = 1000.0 * size
        h = hz[env]
        st[(env, "mle", "auc", h)] = S(mle_auc, w=0.05)
        for m in ("ma_l1", "ma_vaml"):
            st[(env, m, "auc", h)] = S(ub, w=0.05)
        for m in ("ma_direct_l1", "ma_direct_l2"):
            st[(env, m, "auc", h)] = S(direct, w=0.05)
    # the pairwise horizon is the smaller size's: provide MLE at those horizons too
    st[("grid8", "mle", "auc", 5000.0)] = S(0.7, w=0.05)
    st[("grid16", "mle", "auc", 8000.0)] = S(0.1, w=0.05)
    v = verdicts("fig1", StubData(st, hz))
    assert v == {"1a": "holds", "1b": "holds", "1c": "holds"}
    st[("grid16", "mle", "auc", 8000.0)] = S(0.8, w=0.05)  # same as grid8 at 8000 steps
    assert verdicts("fig1", StubData(st, hz))["1a"] == "inconclusive (CIs overlap)"


def test_env_and_figure_names():
    assert canonical_env("Half_Cheetah") == canonical_env("halfcheetah") == "halfcheetah"
    assert canonical_env("Walker2d-v5") == "walker" and canonical_env("grid_16") == "grid16"
    assert canonical_env("CartPole_D16-small") == canonical_env("cartpole_d16_small") == "cartpole_d16_small"
    assert norm_figure("Fig_2") == norm_figure(2) == norm_figure("figure2") == "fig2"
    assert {c.figure for c in CLAIMS} == {"fig1", "fig2", "fig3", "fig4", "vagram"}


def test_arch_compat_is_scoped_not_process_wide(tmp_path):
    """The arch-8 keyword adaptation lives in thin subclasses: arch itself is not patched."""
    import arch.bootstrap as arch_bs

    init = arch_bs.IIDBootstrap.__init__
    write_cell(tmp_path, "hopper", "mle", 100.0, n_seeds=3)
    write_cell(tmp_path, "hopper", "ma_l1", 120.0, n_seeds=3)
    res = aggregate(tmp_path, reps=20, plots=False, log=lambda m: None)
    assert len(res["poi"]) == 1
    assert arch_bs.IIDBootstrap.__init__ is init


def test_fig1_report_has_steps_to_goal_table(tmp_path):
    """Figure 1's aggregation adds the gridworld steps-to-goal table (steps_to_goal.md and a
    report section): first evaluation with return > 1, median over seeds."""
    for seed, rets in enumerate([[0.0, 1.2, 1.4], [0.0, 0.5, 1.3], [0.0, 0.2, 0.3]]):
        write_run(tmp_path, "grid5", "mle", seed, [0, 100, 200], rets, figure="fig1")
        write_run(tmp_path, "grid5", "ma_l1", seed, [0, 100, 200], [0.0, 0.1, 0.2], figure="fig1")
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None, plots=False)
    md = (res["out_dir"] / "steps_to_goal.md").read_text()
    assert "| MLE (`mle`) | 200 (2/3) |" in md and "| MA Upper Bound L1 (`ma_l1`) | never (0/3) |" in md
    assert "## Steps to reach the goal" in res["report"].read_text()
    write_cell(tmp_path / "f2", "hopper", "mle", 1.0)
    assert not (
        aggregate(tmp_path / "f2", reps=REPS, log=lambda m: None, plots=False)["out_dir"] / "steps_to_goal.md"
    ).exists()


# ------------------------------------------------- the protocol on synthetic sweeps (issue 26)
def _fig3_verdict(tmp_path, levels, spread):
    for m, level in levels.items():
        write_cell(tmp_path, "hopper", m, level, n_seeds=MIN_SEEDS, spread=spread, figure="fig3")
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    return {c["id"]: c for c in res["claims"]}["3a"]


def test_overlapping_cis_with_a_real_gap_do_not_make_a_near_match(tmp_path):
    """Value-aware truly at 0.85x MLE with wide seed spread: the CIs overlap (the old rule's
    "holds"), but the ratio CI reaches below 1 - MARGIN: inconclusive, never "holds"."""
    c = _fig3_verdict(tmp_path, {"mle": 100.0, "ma_l1": 85.0, "ma_vaml": 85.0}, spread=30.0)
    assert "overlap" not in c["verdict"] and c["verdict"].startswith("inconclusive (ratio CI straddles")
    assert "ratio 0.85" in c["evidence"]


def test_a_true_equivalence_within_the_margin_holds(tmp_path):
    c = _fig3_verdict(tmp_path, {"mle": 100.0, "ma_l1": 101.0, "ma_vaml": 99.0}, spread=2.0)
    assert c["verdict"] == "holds", c["evidence"]
    assert "within" in c["evidence"]


def test_a_gap_beyond_the_margin_does_not_hold(tmp_path):
    c = _fig3_verdict(tmp_path, {"mle": 100.0, "ma_l1": 60.0, "ma_vaml": 101.0}, spread=2.0)
    assert c["verdict"] == "does not hold", c["evidence"]


def test_two_methods_that_never_learned_are_not_testable(tmp_path):
    """Both stay at their first evaluation's level: comparing them says nothing about 2a."""
    for m, level in {"ma_l1": 10.0, "ma_vaml": 50.0, "mle": 200.0}.items():
        write_cell(tmp_path, "hopper", m, level, n_seeds=MIN_SEEDS, flat=m != "mle")
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    v = {c["id"]: c for c in res["claims"]}
    assert v["2a"]["verdict"] == NOT_TESTABLE  # ma_l1 vs ma_vaml: neither left the initial policy
    assert "not testable" in v["2a"]["evidence"]
    assert v["2b"]["verdict"] == "does not hold"  # mle learned: ma_l1 / ma_vaml CI-below it counts


def test_fewer_than_min_seeds_decide_nothing(tmp_path):
    for m, level in {"ma_l1": 300.0, "ma_vaml": 100.0}.items():
        write_cell(tmp_path, "hopper", m, level, n_seeds=MIN_SEEDS - 1)
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    v = {c["id"]: c for c in res["claims"]}
    assert v["2a"]["verdict"] == f"inconclusive (too few seeds (< {MIN_SEEDS}))"  # disjoint CIs, but 7 seeds


def test_committed_slbo_reports_rederived_under_the_protocol():
    """exp/rederive_claims.py on the committed Figure 2 / 4 reports: no value-aware SLBO run
    learned at the medium budget, so 2a and 4a are not testable; nothing is decided on 4 seeds."""
    out = subprocess.run(
        [sys.executable, "exp/rederive_claims.py", "exp/slbo/fig2_medium", "exp/slbo/fig4_medium"],
        cwd=rundir.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = {ln.split(" ")[1]: ln for ln in out.stdout.splitlines() if ln.startswith("| 2") or ln.startswith("| 4")}
    assert "**not testable at this budget (nothing learned)**" in rows["2a"]
    assert "**not testable at this budget (nothing learned)**" in rows["4a"]
    assert all("holds**" not in r for r in rows.values())  # 4 seeds decide nothing
    assert "hopper/mle" in out.stdout and "ma_l1" not in out.stdout.split("Learned")[1].split("\n")[0]


def _vagram_cells(vagram=100.0, others=100.0, mle=100.0, w=1.0, n=MIN_SEEDS):
    stats = {}
    for env in ("cartpole", "cartpole_d16", "cartpole_small", "cartpole_d16_small"):
        stats[(env, "mle")] = S(mle, w=w, n=n)
        stats[(env, "ma_l1")] = S(others, w=w, n=n)
        stats[(env, "ma_vaml")] = S(others, w=w, n=n)
        stats[(env, "vagram")] = S(vagram, w=w, n=n)
    return stats


def test_vagram_claims_any_beats_and_the_equivalence_margin():
    # VaGraM CI-above MLE in every cell: V1-V3 hold; V4 needs every loss within the margin
    v = verdicts("vagram", StubData(_vagram_cells(vagram=150.0)))
    assert (v["V1"], v["V2"], v["V3"]) == ("holds", "holds", "holds")
    assert v["V4"] == "does not hold"  # vagram's ratio 1.5 lies outside 1 ± 0.1
    # everything equal within the margin: nothing beats MLE, and that is decided
    v = verdicts("vagram", StubData(_vagram_cells()))
    assert v["V1"] == "does not hold" and v["V4"] == "holds"
    assert v["V2"].startswith("inconclusive (CIs overlap)")
    # a real gap hidden by overlapping CIs (ratio CI reaches 1.3): undecided, never "does not hold"
    v = verdicts("vagram", StubData(_vagram_cells(vagram=110.0, w=10.0)))
    assert v["V1"].startswith("inconclusive") and "ratio CI reaches above" in v["V1"]
    assert v["V4"].startswith("inconclusive")
    # too few seeds: no decision either way
    v = verdicts("vagram", StubData(_vagram_cells(vagram=150.0, n=MIN_SEEDS - 1)))
    assert v["V1"].startswith("inconclusive (too few seeds")


def test_vagram_claims_not_testable_when_nothing_learned():
    stats = _vagram_cells()
    initials = {k: Stat(iqm=100.0, lo=95.0, hi=105.0, n=MIN_SEEDS) for k in stats}
    v = verdicts("vagram", StubData(stats, initials=initials))
    assert v["V1"] == NOT_TESTABLE and v["V2"] == NOT_TESTABLE


def test_per_cell_readings_and_ratios(tmp_path):
    """The report's per-cell table, end to end on a constructed VaGraM sweep: each reading of
    the rule (beats / matches / does not beat / below / undecided / not testable / too few
    seeds) with its ratio CI, in versus.csv, report.md and ratios.png."""
    n = MIN_SEEDS
    kw = {"figure": "vagram", "n_seeds": n}
    # cartpole_d16: mle 100 (+-2); vagram 150 beats it, ma_l1 101 matches, ma_vaml 50 below
    write_cell(tmp_path, "cartpole_d16", "mle", 100.0, **kw)
    write_cell(tmp_path, "cartpole_d16", "vagram", 150.0, **kw)
    write_cell(tmp_path, "cartpole_d16", "ma_l1", 101.0, **kw)
    write_cell(tmp_path, "cartpole_d16", "ma_vaml", 50.0, **kw)
    # cartpole_small: wide spreads. ma_l1 at 0.9x: overlap, ratio CI top below 1.1 -> does not
    # beat; vagram at 1.1x: overlap, ratio CI reaches above 1.1 -> undecided
    write_cell(tmp_path, "cartpole_small", "mle", 100.0, spread=10.0, **kw)
    write_cell(tmp_path, "cartpole_small", "ma_l1", 90.0, spread=15.0, **kw)
    write_cell(tmp_path, "cartpole_small", "vagram", 110.0, spread=30.0, **kw)
    # cartpole: nobody leaves the first evaluation; cartpole_d16_small: 7 seeds of vagram
    write_cell(tmp_path, "cartpole", "mle", 20.0, flat=True, **kw)
    write_cell(tmp_path, "cartpole", "vagram", 200.0, flat=True, **kw)
    write_cell(tmp_path, "cartpole_d16_small", "mle", 100.0, **kw)
    write_cell(tmp_path, "cartpole_d16_small", "vagram", 300.0, figure="vagram", n_seeds=n - 1)
    res = aggregate(tmp_path, reps=REPS, log=lambda m: None)
    rows = {(r.env, r.method): r for r in res["versus"].itertuples()}
    reading = {k: r.reading for k, r in rows.items()}
    assert reading == {
        ("cartpole_d16", "vagram"): "beats mle",
        ("cartpole_d16", "ma_l1"): "matches mle",
        ("cartpole_d16", "ma_vaml"): "below mle",
        ("cartpole_small", "ma_l1"): "does not beat mle",
        ("cartpole_small", "vagram"): "undecided (CIs overlap; ratio CI reaches above 1 + 0.1)",
        ("cartpole", "vagram"): "not testable (nothing learned)",
        ("cartpole_d16_small", "vagram"): f"undecided (too few seeds (< {MIN_SEEDS}))",
    }
    r = rows[("cartpole_d16", "vagram")]
    assert r.ratio == pytest.approx(1.5) and r.ratio_lo < 1.5 < r.ratio_hi and r.ratio_lo > 1.4
    assert r.learned and r.learned_baseline and r.n_seeds == r.n_seeds_baseline == n
    m = rows[("cartpole_d16", "ma_l1")]
    assert 0.9 <= m.ratio_lo <= m.ratio <= m.ratio_hi <= 1.1
    u = rows[("cartpole_small", "vagram")]
    assert u.ratio_hi > 1.1 and u.ratio_lo < 1.1
    flat = rows[("cartpole", "vagram")]
    assert flat.learned is False and flat.learned_baseline is False
    assert read_csv(res["versus_csv"])[0]["reading"] in set(reading.values())
    report = res["report"].read_text()
    assert "## Per cell: each method against its baseline" in report
    assert "* beats its baseline: cartpole_d16: vagram" in report
    assert "* below its baseline: cartpole_d16: ma_vaml" in report
    assert "* not testable (nothing learned): cartpole: vagram" in report
    assert res["ratios_png"].stat().st_size > 0 and "ratios.png" in report


def test_cell_reading_rule():
    assert cell_reading("above", (1.5, 1.4, 1.6), "mle") == "beats mle"
    assert cell_reading("below", None, "mle") == "below mle"
    assert cell_reading("overlap", (1.0, 0.95, 1.05), "mle") == "matches mle"
    assert cell_reading("overlap", (0.8, 0.6, 1.1), "mle") == "does not beat mle"
    assert cell_reading("overlap", (1.0, 0.95, 1.11), "mle").startswith("undecided (CIs overlap; ratio CI")
    assert cell_reading("overlap", None, "mle") == "undecided (baseline IQM CI not above 0: no ratio margin)"
    assert cell_reading("not testable", None, "mle") == "not testable (nothing learned)"
