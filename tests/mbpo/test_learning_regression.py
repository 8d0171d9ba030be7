"""Learning tests for patched MBPO (fixed seeds, CI-sized budget).

* MBPO-MLE improves on a random policy (in the spirit of upstream's tests/algorithms).
* MBPO with ``ma_l1`` (+ stale-value refit) stays within the seed spread of the
  stored MLE baseline curve ``tests/baselines/mbpo_inv_pendulum_mle.csv``, produced
  by ``exp/mbpo/make_baselines.py`` (command and commit in the ``.json`` sidecar).

Score = mean evaluation return over the last two epochs. Tolerance: the baseline's
seed spread (3 standard deviations over its seeds) with a floor of 25% of its mean,
because a single CI seed is compared with a 3-seed mean.
"""
import csv
import json
import statistics
from pathlib import Path

import pytest

from vaml_ext.mbpo.runner import REGRESSION_ENV, REGRESSION_OVERRIDES, compose, random_policy_return, run_mbpo

BASELINES = Path(__file__).resolve().parents[1] / "baselines"


def _score(rewards):
    return statistics.mean(rewards[-2:])


def load_baseline(method):
    stem = BASELINES / f"mbpo_{REGRESSION_ENV.removeprefix('mbpo_')}_{method}"
    meta = json.loads(stem.with_suffix(".json").read_text())
    by_seed = {}
    with open(stem.with_suffix(".csv")) as f:
        for row in csv.DictReader(f):
            by_seed.setdefault(int(row["seed"]), []).append(float(row["episode_reward"]))
    assert meta["overrides"][: len(REGRESSION_OVERRIDES)] == list(REGRESSION_OVERRIDES), \
        "baseline was produced with another budget: regenerate it (exp/mbpo/make_baselines.py)"
    return meta, {s: _score(r) for s, r in by_seed.items()}


def _run(method, tmp_path, seed=0):
    cfg = compose(REGRESSION_ENV, [*REGRESSION_OVERRIDES, f"seed={seed}", f"overrides.model_loss={method}"])
    out = run_mbpo(cfg, tmp_path / method)
    return cfg, [r["episode_reward"] for r in out["results"]]


def test_baseline_files_are_sane():
    meta, scores = load_baseline("mle")
    assert len(scores) >= 3 and meta["commit"] and meta["command"].startswith("python exp/mbpo/make_baselines.py")
    assert statistics.mean(scores.values()) > 2 * meta["random_policy_return"]


def test_mbpo_mle_beats_random_policy(tmp_path):
    cfg, rewards = _run("mle", tmp_path)
    rnd = random_policy_return(cfg, episodes=20)
    assert _score(rewards) > 2 * rnd, (rewards, rnd)


def test_mbpo_ma_l1_within_mle_baseline_spread(tmp_path):
    _, scores = load_baseline("mle")
    mu = statistics.mean(scores.values())
    sd = statistics.stdev(scores.values())
    tol = max(3 * sd, 0.25 * mu)
    _, rewards = _run("ma_l1", tmp_path)
    assert _score(rewards) >= mu - tol, (rewards, mu, sd)
