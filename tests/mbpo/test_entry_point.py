"""Patched mbrl-lib MBPO runs through upstream's entry point on today's stack."""

import subprocess
import sys

import pytest

from tests.mbpo.upstream_compat_checks import check_model_loads_back, check_mujoco_state_helpers
from vaml_ext.mbpo.runner import MBPO_OVERRIDES, SMOKE_OVERRIDES, compose, read_results, run_mbpo


@pytest.mark.slow
def test_cli_entry_point_runs_one_epoch(tmp_path):
    """`python -m mbrl.examples.main algorithm=mbpo overrides=...` (the README command)."""
    cmd = [
        sys.executable,
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_cartpole",
        f"hydra.run.dir={tmp_path}",
        *SMOKE_OVERRIDES,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_results(tmp_path)
    assert len(rows) == 2 and rows[-1]["env_step"] == 199
    assert (tmp_path / "model.pth").is_file() and (tmp_path / "sac.pth").is_file()
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    # the saved model loads back through mbrl's own API (torch >= 2.6: weights_only loads)
    assert check_model_loads_back(tmp_path, (4,), (1,)) > 0


def test_mujoco_state_helpers_on_gymnasium_envs():
    check_mujoco_state_helpers()


@pytest.mark.slow
def test_cli_rejects_unknown_model_loss_before_training(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_cartpole",
        f"hydra.run.dir={tmp_path}",
        "overrides.model_loss=not_a_loss",
        *SMOKE_OVERRIDES,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "overrides.model_loss='not_a_loss'" in proc.stderr and "mle" in proc.stderr
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("override", MBPO_OVERRIDES)
def test_every_shipped_override_completes_an_epoch(override, tmp_path):
    cfg = compose(override, ["device=cpu", *SMOKE_OVERRIDES])
    out = run_mbpo(cfg, tmp_path)
    assert [r["epoch"] for r in out["results"]] == [0.0, 1.0]
    assert all(r["episode_reward"] == r["episode_reward"] for r in out["results"])  # not NaN


def test_device_defaults_to_cpu_without_cuda():
    import torch

    cfg = compose("mbpo_cartpole")
    assert cfg.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_model_loss_key_exists_without_plus():
    cfg = compose("mbpo_hopper", ["overrides.model_loss=mle"])
    assert cfg.overrides.model_loss == "mle"
    assert cfg.overrides.env == "gym___Hopper-v4"


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ["overrides.model_loss=ma_l1"],
        ["overrides.model_loss=ma_vaml"],
        ["overrides.model_loss=ma_l1", "overrides.value_update_interval=0"],
        ["overrides.model_loss=ma_l1", "overrides.va_value=soft", "overrides.va_samples=2"],
    ],
)
def test_cli_value_aware_variants_on_hopper(extra, tmp_path):
    """Acceptance: `... overrides=mbpo_hopper overrides.model_loss=ma_l1 device=cpu` runs."""
    cmd = [
        sys.executable,
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_hopper",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
        *SMOKE_OVERRIDES,
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_results(tmp_path)
    assert len(rows) == 2
    import csv

    with open(tmp_path / "va_model.csv") as f:
        diag = list(csv.DictReader(f))
    assert len(diag) == 4  # one row per model training (200 steps / freq 50)
    refits = int(float(diag[-1]["refits_total"]))
    if "overrides.value_update_interval=0" in extra:
        assert refits == 0
    else:
        assert refits > 0 and float(diag[-1]["refit_s_total"]) > 0
    assert all(float(r["val_mean_abs_advantage"]) >= 0 for r in diag)
    assert (tmp_path / "tb").is_dir()
