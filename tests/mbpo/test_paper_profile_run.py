"""overrides.profile=paper through upstream's entry point on the default base (mbrl 0.2.0)."""

import csv
import subprocess
import sys

import pytest

from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, read_results


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ma_l1", "mle"])
def test_cli_paper_profile_on_hopper(tmp_path, loss):
    """The issue's acceptance command (tiny budget) on the default base: the authors' refit
    wipes and refills the SAC buffer, capped at its tiny capacity, and the run completes --
    for ``mle`` too, as in the authors' loop (their MLE baseline refit the critic as well)."""
    cmd = [
        sys.executable,
        "-m",
        "mbrl.examples.main",
        "algorithm=mbpo",
        "overrides=mbpo_hopper",
        f"overrides.model_loss={loss}",
        "overrides.profile=paper",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
        *SMOKE_OVERRIDES,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "value_refit_mode=authors: the SAC buffer holds" in proc.stdout
    assert len(read_results(tmp_path)) == 2
    with open(tmp_path / "va_model.csv") as f:
        diag = list(csv.DictReader(f))
    assert len(diag) == 4 and int(float(diag[-1]["refits_total"])) > 0
    assert "profile: paper" in (tmp_path / ".hydra" / "config.yaml").read_text()
