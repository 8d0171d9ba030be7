"""What an MBPO run shows people: readable console columns, the end-of-run summary and
done.json, and the optional Weights & Biases logging (offline)."""

import csv
import json

import pytest

from vaml_ext.mbpo.diagnostics import LOG_FORMAT
from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, run_mbpo


def test_console_columns_use_csv_names_and_run_ends_with_summary(tmp_path, capsys):
    cfg = compose("mbpo_cartpole", ["device=cpu", "seed=0", *SMOKE_OVERRIDES, "overrides.model_loss=ma_l1"])
    out = run_mbpo(cfg, tmp_path, silent=False)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    va = [ln for ln in lines if "va_model" in ln]
    res = [ln for ln in lines if ln.startswith("| ") and "results" in ln.split("|")[1]]
    assert len(va) == 4 and len(res) >= 2, captured.out[-3000:]
    with open(tmp_path / "va_model.csv") as f:
        header = next(csv.reader(f))
    for key, label, _ in LOG_FORMAT:  # console label == CSV column, for every diagnostic
        assert label == key and key in header and f"{key}: " in va[-1]
    assert "episode_reward: " in res[-1] and "env_step: " in res[-1] and "| R: " not in captured.out
    model = [ln for ln in lines if ln.startswith("| ") and "model_train" in ln.split("|")[1]]
    assert model and "model_val_score: " in model[-1] and "MVSCORE" not in captured.out
    # two-line summary on stderr, the same numbers in done.json
    done = json.loads((tmp_path / "done.json").read_text())
    final = out["results"][-1]["episode_reward"]
    assert done["final_return"] == final and done["env_steps"] == 200 and done["n_evals"] == 2
    assert done["best_return"] == max(r["episode_reward"] for r in out["results"]) == done["best_eval_reward"]
    err = [ln for ln in captured.err.splitlines() if "finished: final return" in ln or "files: " in ln]
    assert len(err) == 2 and f"final return {final:.1f}" in err[0] and str(tmp_path) in err[1], captured.err[-2000:]


def test_wandb_switch_is_validated_before_training(tmp_path):
    from vaml_ext.mbpo.plugin import validate_config

    cfg = compose("mbpo_cartpole", ["device=cpu", *SMOKE_OVERRIDES, "overrides.wandb_mode=sometimes"])
    with pytest.raises(ValueError, match=r"overrides\.wandb_mode='sometimes' is invalid"):
        validate_config(cfg)
    assert compose("mbpo_cartpole").overrides.wandb is False  # opt-in, no `+` needed


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
def test_wandb_offline_logs_config_returns_and_diagnostics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from tests.runlog.test_tracking import wandb_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose(
        "mbpo_cartpole",
        [
            "device=cpu",
            "seed=0",
            *SMOKE_OVERRIDES,
            "overrides.model_loss=ma_l1",
            "overrides.wandb=true",
            "overrides.wandb_project=vaml-test",
        ],
    )
    run_mbpo(cfg, tmp_path)
    data = wandb_records(tmp_path)
    for key in (
        "eval/episode_reward",
        "va_model/val_mse",
        "va_model/val_mean_abs_advantage",
        "va_model/refits_total",
        "va_model/model_train_seconds",
        "env_step",
        "va_loss_coeff",
        "vaml-test",
        "best_eval_reward",
    ):
        assert key.encode() in data, key
