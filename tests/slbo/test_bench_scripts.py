"""The SLBO benchmark scripts run end to end on a tiny budget (their figures are not checked:
speed is measured by the scripts themselves, never by unit tests)."""

import pytest

from tests.support import load_exp_script


def _load(name):
    return load_exp_script("slbo", name)


def test_step_floor_runs_and_its_torchscript_step_matches_the_eager_one(capsys):
    # time_scripted asserts bit-identical states (Python and TorchScript) against the sampler + stepper
    _load("bench_step_floor").main(["--envs", "hopper", "--repeats", "1", "--steps", "10"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| hopper |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == 12 and all(float(c) > 0 for c in cells[1:])


def test_step_floor_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        _load("bench_step_floor").main(["--steps", "5"])
    assert e.value.code == 2 and "--steps >= 10" in capsys.readouterr().err
