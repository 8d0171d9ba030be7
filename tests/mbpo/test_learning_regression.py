"""Learning regressions for patched MBPO (fixed seeds, CI-sized budgets).

Stored curves ``tests/baselines/mbpo_<regression>_<method>.csv`` (3 seeds each, made by
``exp/mbpo/make_baselines.py``; command, commit and overrides in the ``.json``
sidecar). Settings: ``REGRESSIONS`` in ``vaml_ext/mbpo/runner.py``.

* ``inv_pendulum_1k`` -- MBPO-MLE on InvertedPendulum after 1,000 env steps improves on
  a random policy (in the spirit of upstream's tests/algorithms) and stays within the
  seed spread of its stored curve. Score = mean evaluation return of the last two
  epochs; band = baseline mean − max(3·sd over its seeds, 30% of the mean): one CI seed
  is compared with a 3-seed mean, whose spread underestimates the true spread.
* ``cartpole_2k`` -- MBPO-``ma_l1`` (stale-value refit at defaults) against the stored
  **MLE** curve on paper Fig. 3's CartPole (the figure's ``short`` preset, stopped at
  2,000 env steps), where both learn; see :func:`ma_l1_band` for score and tolerance.
"""

import csv
import json
import statistics
from pathlib import Path

import pytest

from vaml_ext.mbpo.runner import REGRESSIONS, random_policy_return, regression_config, run_mbpo

BASELINES = Path(__file__).resolve().parents[1] / "baselines"


def load_curves(regression, method):
    """(meta, {seed: [(env_step, return), ...]}) of a stored baseline."""
    stem = BASELINES / f"mbpo_{regression}_{method}"
    meta = json.loads(stem.with_suffix(".json").read_text())
    curves = {}
    with open(stem.with_suffix(".csv")) as f:
        for row in csv.DictReader(f):
            curves.setdefault(int(row["seed"]), []).append((int(row["env_step"]), float(row["episode_reward"])))
    _, overrides = REGRESSIONS[regression]
    assert set(overrides) <= set(meta["overrides"]) and f"overrides.model_loss={method}" in meta["overrides"], (
        "baseline was produced with other settings: regenerate it (exp/mbpo/make_baselines.py)"
    )
    return meta, curves


def last_epochs_score(curve, n):
    """Mean evaluation return over the last ``n`` epochs (one episode per epoch)."""
    return statistics.mean(r for _, r in curve[-n:])


def _run(regression, method, tmp_path, seed=0):
    cfg = regression_config(regression, method, seed)
    out = run_mbpo(cfg, tmp_path / method)
    return cfg, [(int(r["env_step"]), r["episode_reward"]) for r in out["results"]]


# --------------------------------------------------------------------- inv_pendulum_1k (MLE)


def mle_band(scores):
    mu = statistics.mean(scores.values())
    sd = statistics.stdev(scores.values())
    return mu, mu - max(3 * sd, 0.3 * mu)


@pytest.mark.numerics  # stored curves: also checked by CI's second dispatch pass
@pytest.mark.parametrize(
    "regression,method", [("inv_pendulum_1k", "mle"), ("cartpole_2k", "mle"), ("cartpole_2k", "ma_l1")]
)
def test_baseline_files_are_sane(regression, method):
    meta, curves = load_curves(regression, method)
    assert len(curves) >= 3 and meta["commit"] and meta["command"].startswith("python exp/mbpo/make_baselines.py")
    assert f"--regression {regression}" in meta["command"]
    steps = {tuple(s for s, _ in c) for c in curves.values()}
    assert len(steps) == 1, "every seed must be evaluated at the same env steps"
    if method == "mle":
        scores = [last_epochs_score(c, 2) for c in curves.values()]
        assert statistics.mean(scores) > 2 * meta["random_policy_return"]


@pytest.mark.slow
@pytest.mark.numerics  # the cheaper stored-curve regression (~2 min) is rerun by CI's second pass
def test_mbpo_mle_learning_regression(tmp_path):
    _, curves = load_curves("inv_pendulum_1k", "mle")
    mu, lower = mle_band({s: last_epochs_score(c, 2) for s, c in curves.items()})
    cfg, curve = _run("inv_pendulum_1k", "mle", tmp_path)
    score = last_epochs_score(curve, 2)
    rnd = random_policy_return(cfg, episodes=20)
    assert score > 2 * rnd, (curve, rnd)
    assert score >= lower, (curve, mu, lower)


# --------------------------------------------------------------------- cartpole_2k (ma_l1 vs MLE)

CARTPOLE_EPOCHS = 5  # the last 5 of 10 epochs: env steps 1,200-2,000
#: The paper (Sec. 5.4, Fig. 3) finds value-aware MBPO "comparable but not excess" to MLE
#: on CartPole, "solving the task but with lesser return". Checkable form: the stored
#: MA-L1 seeds reach on average at least this fraction of the stored MLE mean at the same
#: budget (measured: 0.59, per seed 0.51-0.66; exp/mbpo/README.md).
COMPARABLE = 0.5


def ma_l1_band(mle_scores, ma_scores):
    """(MLE mean, MA-L1 mean, lower bound for one fresh MA-L1 seed).

    Score = mean return over the last ``CARTPOLE_EPOCHS`` epochs (one evaluation
    episode each). The fresh seed is compared with where the stored seeds put MA-L1
    relative to the stored MLE curve: ``mean_MA − max(3·sd_MA, 0.3·mean_MA)`` (the rule
    of the MLE test: one fresh seed against a 3-seed mean, whose spread underestimates
    the true one). With the stored curves that is 0.37 × the MLE mean (71.5 of 193);
    a policy that has not learnt scores about 0.2 × (random actions: 26; MA-L1's first
    epochs: 29-56).
    """
    mu_m = statistics.mean(mle_scores.values())
    mu_a = statistics.mean(ma_scores.values())
    sd_a = statistics.stdev(ma_scores.values())
    return mu_m, mu_a, mu_a - max(3 * sd_a, 0.3 * mu_a)


def test_stored_ma_l1_curve_is_comparable_to_mle():
    """The stored seeds themselves satisfy the paper's claim (no silent regeneration)."""
    _, mle = load_curves("cartpole_2k", "mle")
    meta, ma = load_curves("cartpole_2k", "ma_l1")
    mu_m = statistics.mean(last_epochs_score(c, CARTPOLE_EPOCHS) for c in mle.values())
    ma_scores = [last_epochs_score(c, CARTPOLE_EPOCHS) for c in ma.values()]
    assert statistics.mean(ma_scores) >= COMPARABLE * mu_m, (ma_scores, mu_m)
    assert min(ma_scores) > 2 * meta["random_policy_return"]


@pytest.mark.slow
def test_mbpo_ma_l1_vs_stored_mle_curve(tmp_path):
    _, mle = load_curves("cartpole_2k", "mle")
    _, ma = load_curves("cartpole_2k", "ma_l1")
    mu_m, mu_a, lower = ma_l1_band(
        {s: last_epochs_score(c, CARTPOLE_EPOCHS) for s, c in mle.items()},
        {s: last_epochs_score(c, CARTPOLE_EPOCHS) for s, c in ma.items()},
    )
    cfg, curve = _run("cartpole_2k", "ma_l1", tmp_path)
    assert [s for s, _ in curve] == [s for s, _ in mle[0]], "evaluation points differ from the stored curve"
    score = last_epochs_score(curve, CARTPOLE_EPOCHS)
    rnd = random_policy_return(cfg, episodes=20)
    assert score > 2 * rnd, (curve, rnd)
    assert score >= lower, dict(
        curve=curve, score=score, mle_mean=mu_m, ma_l1_mean=mu_a, lower=lower, ratio_to_mle=score / mu_m
    )
