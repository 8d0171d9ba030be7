"""The seed-batched SLBO runner (``python -m vaml_ext.slbo.batched.run``) against one-seed
runs of the port: per seed the same numbers bit for bit (``test_same_numbers``'
fingerprint: returns, log lines, final weights, optimiser states, replay buffer, noise and
generator states), whatever the batch around it; a seed that fails is retired and the
others are untouched.

Short Hopper runs of ``ma_l1`` under ``setting=paper`` (clipped value fit, refit every 5
model updates, terminating episodes), as ``test_same_numbers`` runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slbo.test_same_numbers import ARGS, fingerprint

REPO = Path(__file__).resolve().parents[2]
BATCH_ARGS = [a for a in ARGS if not a.startswith("seed=")] + ["variant=ma_l1", "setting=paper"]


def _env(tree: Path) -> dict:
    return dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _run(tree: Path, module: str, args: list[str], code: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=REPO, env=_env(tree), capture_output=True, text=True, timeout=900)


def one_seed(tree: Path, seed: int, log_dir: Path) -> dict:
    out = _run(tree, "vaml_ext.slbo.run", [*BATCH_ARGS, f"seed={seed}", f"log_dir={log_dir}"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return fingerprint(log_dir)


def batch(tree: Path, seeds: list[int], root: Path, code: str | None = None) -> subprocess.CompletedProcess:
    dirs = ",".join(str(root / f"seed{s}") for s in seeds)
    args = [*BATCH_ARGS, f"seeds={','.join(map(str, seeds))}", f"log_dirs={dirs}"]
    return _run(tree, "vaml_ext.slbo.batched.run", args, code)


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory) -> dict:
    """Seed 7 alone (the port), and seeds 7, 8, 9 as one batch."""
    root = tmp_path_factory.mktemp("batched")
    ref = one_seed(tree, 7, root / "alone7")
    out = batch(tree, [7, 8, 9], root / "b789")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "served {'rollout':" in out.stdout and "'vf':" in out.stdout  # both kernels ran
    return {"alone7": ref, "root": root, **{s: fingerprint(root / "b789" / f"seed{s}") for s in (7, 8, 9)}}


@pytest.mark.slow  # subprocess runs (about a minute together); `make test` runs them
def test_a_seed_in_a_batch_has_the_numbers_it_has_alone(reference):
    assert reference[7] == reference["alone7"]
    assert reference[8] != reference[7]  # (the seeds are different runs)


@pytest.mark.slow  # subprocess runs (about a minute together); `make test` runs them
def test_each_seed_writes_its_own_run_directory(reference):
    for s in (7, 8, 9):
        d = reference["root"] / "b789" / f"seed{s}"
        assert json.loads((d / "done.json").read_text())["final_return"] is not None
        assert f"log_dir = {d}" in (d / "log.txt").read_text()
        assert f"seed: {s}\n" in (d / "config.yml").read_text()


@pytest.mark.slow  # subprocess runs (about a minute together); `make test` runs them
def test_batch_of_one_is_the_port(tree, reference, tmp_path):
    out = batch(tree, [7], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert fingerprint(tmp_path / "seed7") == reference["alone7"]


@pytest.mark.slow
def test_a_seed_has_the_same_numbers_in_a_batch_of_16(tree, reference, tmp_path):
    seeds = [7, *range(20, 35)]
    out = batch(tree, seeds, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert fingerprint(tmp_path / "seed7") == reference["alone7"]


#: the batch with seed 8's value-fit inputs poisoned with NaN from its 3rd fit on
POISON = """
import sys
import torch
from vaml_ext.slbo.batched import kernels, run
calls = {"n": 0}
fit_values = kernels.fit_values
def poisoned(requests):
    calls["n"] += 1
    if calls["n"] >= 3 and len(requests) == 3:
        requests[1].inputs.fill_(float("nan"))
    return fit_values(requests)
kernels.fit_values = poisoned
sys.exit(run.main(sys.argv[1:]))
"""


@pytest.mark.slow  # subprocess runs (about a minute together); `make test` runs them
def test_a_failing_seed_is_retired_and_the_others_are_untouched(tree, reference, tmp_path):
    out = batch(tree, [7, 8, 9], tmp_path, code=POISON)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "seed 8 failed" in out.stdout
    failed = json.loads((tmp_path / "seed8" / "failed.json").read_text())
    assert "isfinite" in failed["log_tail"] or "nan" in failed["log_tail"].lower()
    assert not (tmp_path / "seed8" / "done.json").exists()
    for s in (7, 9):
        assert fingerprint(tmp_path / f"seed{s}") == reference[s]


def test_bad_arguments_fail_loudly(tree, tmp_path):
    for args, msg in [
        (["seeds=1,x"], "comma-separated integers"),
        (["seeds=1,1"], "each seed once"),
        (["seeds=1,2", "log_dirs=a"], "names 1 directories for 2 seeds"),
        (["seed=1"], "per seed here"),
        ([], "seeds= is required"),
    ]:
        out = _run(tree, "vaml_ext.slbo.batched.run", ["env=hopper", *args])
        assert out.returncode != 0 and msg in out.stderr, (args, out.stderr[-500:])


@pytest.mark.slow
def test_a_killed_batch_resumes_every_seed_bit_identically(tree, tmp_path):
    """kill -9 once both seeds have checkpointed stage 0 (of 2); the same command resumes
    each from its own checkpoint and ends with the numbers of an uninterrupted batch."""
    from tests.support import sigkill_when

    two = [a for a in BATCH_ARGS if not a.startswith(("slbo.n_stages", "ckpt.resume"))] + ["slbo.n_stages=2"]
    seeds, dirs = "7,8", [tmp_path / "a" / "seed7", tmp_path / "a" / "seed8"]
    cmd = [sys.executable, "-m", "vaml_ext.slbo.batched.run", *two, f"seeds={seeds}"]
    cmd.append("log_dirs=" + ",".join(map(str, dirs)))
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: all((d / "ckpt" / "latest.pt").is_file() for d in dirs), timeout=600)
    assert not any((d / "done").exists() for d in dirs), "the kill did not land mid-run"
    out = subprocess.run(cmd, cwd=REPO, env=_env(tree), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert all("Resuming from" in (d / "log.txt").read_text() for d in dirs)
    clean = [tmp_path / "b" / "seed7", tmp_path / "b" / "seed8"]
    ref = subprocess.run(
        [*cmd[:-1], "log_dirs=" + ",".join(map(str, clean))], cwd=REPO, env=_env(tree), capture_output=True, text=True
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    for d, c in zip(dirs, clean):  # all but log.txt, which keeps the killed attempt's lines too
        got, want = fingerprint(d), fingerprint(c)
        assert {k: v for k, v in got.items() if k != "log"} == {k: v for k, v in want.items() if k != "log"}


@pytest.mark.slow  # subprocess runs; `make test` runs them
def test_the_device_path_runs_the_batch_on_the_cpu_too(tree, reference, tmp_path):
    """``$VAML_SLBO_DEVICE_ROLLOUT=1``: the GPU path (``vaml_ext/slbo/batched/device.py``)
    on this CPU. Relaxed, not exact: the first evaluation on the real env (before any
    virtual step) is the exact batch's; the first on the model agrees to float tolerance
    (``tests/slbo/test_batched_device.py`` has the step-by-step lockstep)."""
    dirs = ",".join(str(tmp_path / f"seed{s}") for s in (7, 8))
    out = subprocess.run(
        [sys.executable, "-m", "vaml_ext.slbo.batched.run", *BATCH_ARGS, "seeds=7,8", f"log_dirs={dirs}"],
        cwd=REPO,
        env=dict(_env(tree), VAML_SLBO_DEVICE_ROLLOUT="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for s in (7, 8):
        got, exact = fingerprint(tmp_path / f"seed{s}")["returns"], reference[s]["returns"]
        assert got[0]["real_return_mean"] == exact[0]["real_return_mean"]
        assert float(got[0]["virt_return_mean"]) == pytest.approx(float(exact[0]["virt_return_mean"]), rel=1e-4)
        assert json.loads((tmp_path / f"seed{s}" / "done.json").read_text())["final_return"] is not None
