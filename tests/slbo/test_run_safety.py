"""SLBO runs through vaml_ext.slbo.run (patched tree, patches/slbo/0003): one writer per
log_dir, and an unreadable ckpt/latest.pt recovered from ckpt/previous.pt."""

import csv
import os
import subprocess
import sys

import pytest

from tests.slbo.conftest import REPO
from tests.support import kill_seed, lock_held_elsewhere, sigkill_when
from vaml_ext.runlog.lock import HOLDER_FILE

ARGS = [
    "variant=mle",
    "env=pendulum",
    "seed=5",
    "slbo.n_iters=1",
    "slbo.n_model_iters=10",
    "slbo.n_policy_iters=1",
    "rollout.n_train_samples=200",
    "rollout.n_test_samples=200",
    "plan.max_steps=50",
    "runner.max_steps=50",
    "plan.n_trpo_samples=200",
]


def _run(tree, log_dir, *extra):
    env = dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "vaml_ext.slbo.run", *ARGS, f"log_dir={log_dir}", *extra],
        cwd=log_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _stages(log_dir):
    with open(log_dir / "progress.csv") as f:
        return [int(r["stage"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_unreadable_latest_resumes_from_previous_and_second_writer_is_refused(tree, tmp_path):
    log_dir = tmp_path / "run"
    out = _run(tree, log_dir, "slbo.n_stages=2")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    latest, previous = log_dir / "ckpt" / "latest.pt", log_dir / "ckpt" / "previous.pt"
    assert latest.is_file() and previous.is_file()
    latest.write_bytes(latest.read_bytes()[:500])
    out = _run(tree, log_dir, "slbo.n_stages=3")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"checkpoint {latest} could not be loaded" in out.stderr
    assert "stage 0 done, starting stage 1" in out.stdout
    assert _stages(log_dir) == [0, 1, 2, 3]  # rows after the previous checkpoint were truncated, none doubled

    with lock_held_elsewhere(log_dir) as holder:
        out = _run(tree, log_dir, "slbo.n_stages=4")
        assert out.returncode != 0 and f"in use by pid {holder.pid}" in out.stderr
        assert _stages(log_dir) == [0, 1, 2, 3]


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_restart(tree, tmp_path):
    """One randomised kill trial through vaml_ext.slbo.run: the restart is not blocked by the
    dead run's lock (it says it took over when the dead run still held it) and progress.csv
    has each stage once."""
    import signal

    seed, rng = kill_seed()
    delay = rng.uniform(0.0, 4.0)
    print(f"SIGKILL {delay:.2f} s after the first checkpoint", file=sys.stderr)
    log_dir = tmp_path / "run"
    log_dir.parent.mkdir(exist_ok=True)
    env = dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaml_ext.slbo.run", *ARGS, f"log_dir={log_dir}", "slbo.n_stages=4"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sigkill_when(proc, (log_dir / "ckpt" / "latest.pt").is_file, delay=delay)
    # The dead run held the lock when killed: its lock.json is left behind. A kill that lands
    # after the run released its lock (interpreter shutdown) leaves none and needs no takeover.
    orphan = (log_dir / HOLDER_FILE).is_file()
    print(f"killed: {proc.returncode == -signal.SIGKILL}, lock left held: {orphan}", file=sys.stderr)
    out = _run(tree, log_dir, "slbo.n_stages=4")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    if orphan:
        assert f"previous holder pid {proc.pid}" in out.stderr, f"seed {seed}"
    assert _stages(log_dir) == [0, 1, 2, 3, 4], f"seed {seed}"


@pytest.mark.slow
def test_rerunning_a_finished_run_keeps_its_final_row(tree, tmp_path):
    """A finished run re-run as is (a sweep re-run, or a kill that landed after the run ended)
    resumes past its last stage: its final-evaluation row (stage n_stages) must survive."""
    log_dir = tmp_path / "run"
    log_dir.parent.mkdir(exist_ok=True)
    first = _run(tree, log_dir, "slbo.n_stages=2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert _stages(log_dir) == [0, 1, 2]
    again = _run(tree, log_dir, "slbo.n_stages=2")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _stages(log_dir) == [0, 1, 2]
