"""The paper base: mbrl 0.2.0.dev3 + patches/mbrl-lib-dev3 in `.venv-paper` (`make install-paper`).

Skipped when `.venv-paper` is absent (CI builds it with `make install-paper`: one more
venv from the warm pip cache, ~1-4 min, and ~2.5 GB disk for its torch).
"""

import csv
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAPER_PY = REPO / ".venv-paper" / "bin" / "python"

pytestmark = pytest.mark.skipif(not PAPER_PY.exists(), reason="paper base not installed (make install-paper)")

#: a tiny MBPO budget on 0.2.0.dev3 (its agent holds the SAC batch size, not the overrides)
SMOKE = (
    "algorithm.initial_exploration_steps=100",
    "overrides.num_steps=200",
    "overrides.epoch_length=100",
    "overrides.freq_train_model=50",
    "overrides.effective_model_rollouts_per_step=10",
    "overrides.num_sac_updates_per_step=1",
    "algorithm.agent.batch_size=32",
    "overrides.model_batch_size=32",
    "++overrides.num_epochs_train_model=2",
    "++overrides.trial_length=100",
)


def _run(tmp_path, *extra, env=None):
    cmd = [
        str(PAPER_PY),
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_hopper",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
        *SMOKE,
        *extra,
    ]
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=e, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "results.csv") as f:
        return proc, list(csv.DictReader(f))


def test_separate_refit_refused_on_the_paper_base(tmp_path):
    cmd = [
        str(PAPER_PY),
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_hopper",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
        "overrides.model_loss=ma_vaml",
        *SMOKE,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode != 0 and "overrides.value_refit_mode=separate is not available" in proc.stderr
    assert not (tmp_path / "results.csv").exists()


def test_paper_base_is_mbrl_dev3():
    out = subprocess.run(
        [str(PAPER_PY), "-c", "import mbrl, mbrl.util.plugins as p; print(mbrl.__version__, sorted(p.load_plugins()))"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "0.2.0.dev3" and "vaml" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ("overrides.model_loss=ma_l1", "overrides.profile=paper"),
        ("overrides.model_loss=ma_vaml", "overrides.value_refit_mode=authors"),
    ],
)
def test_value_aware_runs_on_the_paper_base(tmp_path, extra):
    """The issue's acceptance command (tiny budget) on mbrl 0.2.0.dev3."""
    proc, rows = _run(tmp_path, *extra)
    assert len(rows) == 2
    with open(tmp_path / "va_model.csv") as f:
        diag = list(csv.DictReader(f))
    assert len(diag) == 4 and int(float(diag[-1]["refits"])) > 0


@pytest.mark.slow
def test_mle_is_identical_with_plugins_on_and_off(tmp_path):
    _, with_plugins = _run(tmp_path / "on")
    _, without = _run(tmp_path / "off", env={"MBRL_PLUGINS": "none"})
    assert len(with_plugins) == 2
    assert [r["episode_reward"] for r in with_plugins] == [r["episode_reward"] for r in without]
