"""Learning regression for patched MBPO (fixed seed, CI-sized budget).

Stored curve ``tests/baselines/mbpo_inv_pendulum_mle_1k.csv`` (3 seeds, made by
``exp/mbpo/make_baselines.py``; command and commit in the ``.json`` sidecar) at
``REGRESSION_BUDGETS["1k"]`` (InvertedPendulum, upstream hyper-parameters, 1,000 env
steps): MBPO-MLE improves on a random policy (in the spirit of upstream's
tests/algorithms) and stays within the seed spread of its stored curve.

MBPO-``ma_l1`` (stale-value refit at defaults) at ``REGRESSION_BUDGETS["5k"]`` improves
on a random policy. It is not yet compared with the MLE curve: ma_l1 starts learning
InvertedPendulum only after ~3.5k steps (3 of 3 seeds, exp/mbpo/README.md) while MLE
beats random within 1k, so at CI budgets "within MLE's seed spread" would fail by
design of the task, not by a regression.

Score = mean evaluation return over the last two epochs (mbrl evaluates one episode
per epoch). Band = baseline mean − max(3·sd over its seeds, 30% of the mean): one CI
seed is compared with a 3-seed mean, whose spread underestimates the true spread.
"""
import csv
import json
import statistics
from pathlib import Path

import pytest

from vaml_ext.mbpo.runner import REGRESSION_BUDGETS, REGRESSION_ENV, compose, random_policy_return, run_mbpo

BASELINES = Path(__file__).resolve().parents[1] / "baselines"


def _score(rewards):
    return statistics.mean(rewards[-2:])


def load_baseline(method, budget):
    stem = BASELINES / f"mbpo_{REGRESSION_ENV.removeprefix('mbpo_')}_{method}_{budget}"
    meta = json.loads(stem.with_suffix(".json").read_text())
    by_seed = {}
    with open(stem.with_suffix(".csv")) as f:
        for row in csv.DictReader(f):
            by_seed.setdefault(int(row["seed"]), []).append(float(row["episode_reward"]))
    assert set(REGRESSION_BUDGETS[budget]) <= set(meta["overrides"]), \
        "baseline was produced with another budget: regenerate it (exp/mbpo/make_baselines.py)"
    return meta, {s: _score(r) for s, r in by_seed.items()}


def band(scores):
    mu = statistics.mean(scores.values())
    sd = statistics.stdev(scores.values())
    return mu, mu - max(3 * sd, 0.3 * mu)


def _run(method, budget, tmp_path, seed=0):
    cfg = compose(REGRESSION_ENV, [*REGRESSION_BUDGETS[budget], f"seed={seed}", f"overrides.model_loss={method}"])
    out = run_mbpo(cfg, tmp_path / method)
    return cfg, [r["episode_reward"] for r in out["results"]]


@pytest.mark.parametrize("budget", ["1k"])
def test_mle_baseline_files_are_sane(budget):
    meta, scores = load_baseline("mle", budget)
    assert len(scores) >= 3 and meta["commit"] and meta["command"].startswith("python exp/mbpo/make_baselines.py")
    assert statistics.mean(scores.values()) > 2 * meta["random_policy_return"]


def test_mbpo_mle_learning_regression(tmp_path):
    _, scores = load_baseline("mle", "1k")
    mu, lower = band(scores)
    cfg, rewards = _run("mle", "1k", tmp_path)
    score = _score(rewards)
    rnd = random_policy_return(cfg, episodes=20)
    assert score > 2 * rnd, (rewards, rnd)
    assert score >= lower, (rewards, mu, lower)


def test_mbpo_ma_l1_learns(tmp_path):
    """ma_l1 (+ refit) learns InvertedPendulum within 5k steps: > 2x a random policy.

    Measured: last-two-epoch scores 34, 73.5 (seeds 1, 2 at 5k) and 92.5 (seed 0 at
    4k) against a random policy's 5.4.
    """
    cfg, rewards = _run("ma_l1", "5k", tmp_path)
    rnd = random_policy_return(cfg, episodes=20)
    assert _score(rewards) > 2 * rnd, (rewards, rnd)
