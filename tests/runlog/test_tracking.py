"""Run summaries (two lines + done.json) and the optional Weights & Biases logging."""

import json
import math
import sys
from pathlib import Path

import pytest

from vaml_ext.runlog import tracking


def _rows():
    return [
        {"env_steps": 200, "return": 10.0, "wall_time_s": 3.0},
        {"env_steps": 400, "return": 55.5, "wall_time_s": 7.0},
        {"env_steps": 600, "return": "42.25", "wall_time_s": 12.5},
    ]


def test_summarize_final_best_steps_wall_and_files(tmp_path):
    (tmp_path / "returns.csv").write_text("x\n")
    (tmp_path / "tb").mkdir()
    (tmp_path / "model.pth").write_text("")
    lines, d = tracking.summarize(_rows(), None, tmp_path, tag="cartpole/mle")
    assert d == {
        "final_return": 42.25,
        "best_return": 55.5,
        "best_env_steps": 400,
        "env_steps": 600,
        "n_evals": 3,
        "wall_time_s": 12.5,
        "run_dir": str(tmp_path.resolve()),
    }
    assert len(lines) == 2
    assert lines[0] == (
        "[cartpole/mle] finished: final return 42.2, best 55.5 at env step 400; 600 env steps, "
        "3 evaluations, 0:12 wall-clock"
    )
    assert lines[1] == f"[cartpole/mle] files: {tmp_path.resolve()}/ (returns.csv, done.json, tb/ + 1 more)"
    # an explicit wall-clock wins over the rows'; other column names
    rows = [{"n_real_samples": 4000, "real_return_mean": -3.0}]
    lines, d = tracking.summarize(rows, 3725.0, tmp_path, step_key="n_real_samples", return_key="real_return_mean")
    assert (d["final_return"], d["env_steps"], d["wall_time_s"]) == (-3.0, 4000, 3725.0)
    assert lines[0].startswith("finished: final return -3.0") and lines[0].endswith("1:02:05 wall-clock")


def test_summarize_without_evaluations_or_finite_returns(tmp_path):
    lines, d = tracking.summarize([], 5.0, tmp_path / "missing")
    assert math.isnan(d["final_return"]) and math.isnan(d["best_return"]) and d["env_steps"] == 0
    assert d["best_env_steps"] is None and "0 evaluations" in lines[0]
    _, d = tracking.summarize([{"env_steps": 5, "return": "nan"}, {"env_steps": 9, "return": 2.0}], 1.0, tmp_path)
    assert (d["best_return"], d["best_env_steps"]) == (2.0, 9)


def test_finish_run_prints_two_lines_and_writes_done_json(tmp_path, capsys):
    d = tracking.finish_run(_rows(), 20.0, tmp_path / "run", tag="t", extra={"seed": 3})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("[t] finished: final return 42.2") and "done.json" in err[1]
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert done == d and done["seed"] == 3 and done["wall_time_s"] == 20.0
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_wandb_options_are_validated_with_the_key_named(monkeypatch):
    monkeypatch.delenv(tracking.ENV_SWITCH, raising=False)
    assert tracking.check_wandb_options({"wandb": False}) is False
    with pytest.raises(ValueError, match=r"overrides\.wandb='yes' is invalid: expected true or false"):
        tracking.check_wandb_options({"wandb": "yes"}, prefix="overrides.")
    with pytest.raises(ValueError, match=r"wandb_mode='offlin' is invalid: expected one of online, offline, disabled"):
        tracking.check_wandb_options({"wandb": False, "wandb_mode": "offlin"})
    opts, rest = tracking.pop_wandb_args(
        ["variant=mle", "wandb=true", "wandb_mode=offline", "wandb_entity=null", "slbo.n_stages=2"]
    )
    assert rest == ["variant=mle", "slbo.n_stages=2"]
    assert opts == {"wandb": True, "wandb_project": "vaml", "wandb_entity": None, "wandb_mode": "offline"}
    with pytest.raises(ValueError, match="wandb='maybe'"):
        tracking.pop_wandb_args(["wandb=maybe"])


def test_wandb_switch_without_wandb_installed_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    monkeypatch.delenv(tracking.ENV_SWITCH, raising=False)
    assert tracking.check_wandb_options({"wandb": False}) is False  # off: wandb never imported
    with pytest.raises(tracking.WandbNotInstalled, match=r"overrides\.wandb=true .*pip install"):
        tracking.check_wandb_options({"wandb": True}, prefix="overrides.")
    monkeypatch.setenv(tracking.ENV_SWITCH, "1")  # the figure command's --wandb
    with pytest.raises(tracking.WandbNotInstalled, match="VAML_WANDB=1"):
        tracking.check_wandb_options({"wandb": False})


def wandb_records(run_dir: Path) -> bytes:
    """The bytes of the offline run files W&B wrote under ``run_dir/wandb`` (keys and config
    values are stored as plain UTF-8 in its record log). W&B's service process writes them
    asynchronously, so it is shut down first (``wandb.teardown``: flushes and exits)."""
    import wandb

    wandb.teardown()
    files = sorted((Path(run_dir) / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}/wandb"
    return b"".join(f.read_bytes() for f in files)


def test_wandb_offline_run_holds_config_metrics_and_csv_rows(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv(tracking.ENV_SWITCH, raising=False)
    assert tracking.start_wandb({"wandb": False}, {}, tmp_path / "off") is None
    csv_path = tmp_path / "progress.csv"
    csv_path.write_text("n_real_samples,real_return_mean,virt_return_mean\n1000,-5.5,3.25\n")
    opts = {"wandb": True, "wandb_project": "vaml-test", "wandb_mode": None}
    with tracking.follow_csv_in_wandb(
        opts, {"variant": "ma_l1_marker"}, tmp_path, "progress.csv", "n_real_samples", interval=0.05
    ) as run:
        run.log({"va_model/val_mse": 0.5}, env_step=10)
        with open(csv_path, "a") as f:
            f.write("2000,-1.5,4.0\n")
    data = wandb_records(tmp_path)
    for key in (b"ma_l1_marker", b"va_model/val_mse", b"real_return_mean", b"virt_return_mean", b"env_step"):
        assert key in data, key


def test_figure_command_wandb_flag_needs_wandb(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    from vaml_ext.exp.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["fig1", "--preset", "smoke", "--seeds", "0", "--wandb", "--out", str(tmp_path)])
    assert e.value.code == 2 and "pip install" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
