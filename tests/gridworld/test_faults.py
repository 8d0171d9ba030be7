"""Gridworld runs under operator errors: two writers, unreadable checkpoints, full disks,
and SIGKILL at random moments. Every recovered run must end with the rows of an
uninterrupted run (wall-clock column aside)."""

import csv
import errno
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.support import kill_seed
from vaml_ext.gridworld.dyna import DynaTrainer
from vaml_ext.gridworld.run import run_gridworld
from vaml_ext.runlog import atomic
from vaml_ext.runlog.atomic import RunWriteError
from vaml_ext.runlog.ckpt import NoUsableCheckpoint
from vaml_ext.runlog.lock import HOLDER_FILE, RunInUse
from vaml_ext.runlog.rundir import EVAL_FILE

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
DYNA = dict(
    real_steps_per_iter=50,
    model_updates_per_iter=5,
    policy_updates_per_iter=3,
    batch_size=64,
    value_update_interval=2,
    eval_greedy=False,
    eval_episodes=2,
)
RUN = dict(size=5, method="ma_l1", seed=1, eval_every=50, dyna=DYNA, progress=False)
STEPS = 600  # 12 iterations, 13 evaluations
#: the kill trials' run: cheaper iterations (one policy update, two model updates)
KILL_DYNA = dict(
    real_steps_per_iter=25,
    model_updates_per_iter=2,
    policy_updates_per_iter=1,
    batch_size=32,
    value_update_interval=2,
    eval_greedy=False,
    eval_episodes=1,
)
KILL_RUN = dict(size=5, method="ma_l1", seed=1, eval_every=50, dyna=KILL_DYNA, progress=False)
KILL_STEPS = 300  # 12 iterations, 7 evaluations and checkpoints


def _rows(run_dir):
    with open(Path(run_dir) / EVAL_FILE) as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    run_gridworld(d, env_steps=STEPS, **RUN)
    return _rows(d)


def _crash_after(monkeypatch, n):
    """The n-th training iteration raises (an in-process death after some checkpoints)."""
    real, calls = DynaTrainer.train_iteration, {"n": 0}

    def it(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("crash")
        return real(self)

    monkeypatch.setattr(DynaTrainer, "train_iteration", it)
    return lambda: monkeypatch.setattr(DynaTrainer, "train_iteration", real)


# ---- one writer -----------------------------------------------------------------------------
def _second(d, out):  # pragma: no cover - runs in a forked child
    try:
        run_gridworld(d, env_steps=1000, **KILL_RUN)
    except RunInUse as e:
        Path(out).write_text(str(e))
        os._exit(3)
    os._exit(0)


def test_second_process_on_a_run_dir_exits_at_once(tmp_path):
    """Two processes started on one run directory: the second exits at once naming the
    first, which finishes with each evaluation row once."""
    d, steps = tmp_path / "run", 1000
    ctx = multiprocessing.get_context("fork")
    a = ctx.Process(target=_child, args=(d, steps))
    a.start()
    try:
        deadline = time.time() + 120
        while not (d / EVAL_FILE).is_file():  # the first run holds the lock and has begun writing
            assert a.exitcode is None and time.time() < deadline, "first run ended before the second started"
            time.sleep(0.01)
        b = ctx.Process(target=_second, args=(d, tmp_path / "b.txt"))
        t0 = time.perf_counter()
        b.start()
        b.join(timeout=60)
        wall = time.perf_counter() - t0
        assert a.exitcode is None, "the first run must still be running for this test to mean anything"
        assert b.exitcode == 3
        assert f"in use by pid {a.pid} on host" in (tmp_path / "b.txt").read_text()
        print(f"second process refused and exited after {wall:.3f} s")
        a.join(timeout=300)
        assert a.exitcode == 0
    finally:
        a.kill()
    assert [int(r["env_steps"]) for r in _rows(d)] == list(range(0, steps + 1, 50))  # no duplicates


# ---- unreadable checkpoints -----------------------------------------------------------------
def test_unreadable_latest_is_set_aside_and_the_previous_one_used(tmp_path, monkeypatch, reference, capsys):
    d = tmp_path / "run"
    restore = _crash_after(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(d, env_steps=STEPS, **RUN)
    restore()
    latest, previous = d / "ckpt" / "latest.pt", d / "ckpt" / "previous.pt"
    assert torch.load(previous, weights_only=True)["trainer"]["env_steps"] == 200
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 3])  # a partial copy / damaged disk
    s = run_gridworld(d, env_steps=STEPS, **RUN)
    assert _rows(d) == reference and s["resumed"]
    err = capsys.readouterr().err
    assert f"checkpoint {latest} could not be loaded" in err and "resuming from previous.pt" in err
    assert len(list((d / "ckpt").glob("latest.pt.unreadable-*"))) == 1


def test_no_loadable_checkpoint_stops_until_restart_is_chosen(tmp_path, monkeypatch, reference):
    d = tmp_path / "run"
    restore = _crash_after(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(d, env_steps=STEPS, **RUN)
    restore()
    for name in ("latest.pt", "previous.pt"):
        (d / "ckpt" / name).write_bytes(b"\0" * 10)
    for _ in range(2):  # never a silent restart
        with pytest.raises(NoUsableCheckpoint, match=r"(?s)latest\.pt: .*previous\.pt: .*restart=True"):
            run_gridworld(d, env_steps=STEPS, **RUN)
    assert not (d / HOLDER_FILE).exists()  # the lock was released on the way out
    s = run_gridworld(d, env_steps=STEPS, restart=True, **RUN)
    assert _rows(d) == reference and not s["resumed"]
    assert len(list((d / "ckpt").glob("*.discarded-*"))) == 2


# ---- failed writes (full disk) --------------------------------------------------------------
@pytest.mark.parametrize("target,nth", [("latest.pt.tmp", 4), (EVAL_FILE, 5), ("done.json.tmp", 1)])
def test_failed_write_stops_the_run_and_keeps_the_previous_files(tmp_path, monkeypatch, reference, target, nth):
    d = tmp_path / "run"
    real, seen = os.fsync, {"n": 0}

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/" + target):
            seen["n"] += 1
            if seen["n"] == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(RunWriteError, match="No space left on device") as e:
        run_gridworld(d, env_steps=STEPS, **RUN)
    monkeypatch.undo()
    named = target.removesuffix(".tmp")
    assert str(d) in str(e.value) and named in str(e.value)
    ckpt = torch.load(d / "ckpt" / "latest.pt", weights_only=True)  # the previous checkpoint is intact
    rows = _rows(d)
    assert rows == reference[: len(rows)] and len(rows) >= len(ckpt["rows"])  # no torn or foreign row
    assert not (d / "done.json").exists() and not list(d.rglob("*.tmp")) and not (d / HOLDER_FILE).exists()
    run_gridworld(d, env_steps=STEPS, **RUN)  # space freed: the same call completes the run
    assert _rows(d) == reference


def test_full_tmpfs_stops_the_run_and_the_rerun_completes(tmp_path, monkeypatch, reference):
    """A real size-limited filesystem (tmpfs), filled up mid-run; skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        d = mnt / "run"
        real, calls = DynaTrainer.train_iteration, {"n": 0}

        def it(self):
            calls["n"] += 1
            if calls["n"] == 5:  # fill the disk
                with open(mnt / "filler", "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass
            return real(self)

        monkeypatch.setattr(DynaTrainer, "train_iteration", it)
        with pytest.raises(RunWriteError, match="No space left on device") as e:
            run_gridworld(d, env_steps=STEPS, **RUN)
        monkeypatch.undo()
        assert str(d) in str(e.value)
        torch.load(d / "ckpt" / "latest.pt", weights_only=True)
        rows = _rows(d)
        assert rows == reference[: len(rows)]
        (mnt / "filler").unlink()
        run_gridworld(d, env_steps=STEPS, **RUN)
        assert _rows(d) == reference
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---- SIGKILL at random moments ----------------------------------------------------------------
N_TRIALS = 20


def _child(d, steps=KILL_STEPS):  # pragma: no cover - runs in a forked child
    run_gridworld(d, env_steps=steps, **KILL_RUN)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart(tmp_path, capsys):
    """N trials: a forked run is SIGKILLed after a random delay (uniform over the run's
    duration) and restarted; every final returns.csv equals the uninterrupted run's."""
    seed, rng = kill_seed()
    ctx = multiprocessing.get_context("fork")
    _child(tmp_path / "warm-up")  # imports TensorBoard once, before any timing
    t0 = time.perf_counter()
    _child(tmp_path / "reference")
    duration = time.perf_counter() - t0
    reference = _rows(tmp_path / "reference")
    killed = takeovers = 0
    for i in range(N_TRIALS):
        d = tmp_path / f"trial{i}"
        delay = rng.uniform(0.0, 1.2 * duration)
        p = ctx.Process(target=_child, args=(d,))
        p.start()
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        killed += p.exitcode == -signal.SIGKILL
        orphan = (d / HOLDER_FILE).is_file()  # the dead run held the lock when it was killed
        capsys.readouterr()
        run_gridworld(d, env_steps=KILL_STEPS, **KILL_RUN)  # the restart: never blocked by the dead run's lock
        assert _rows(d) == reference, f"trial {i}: killed after {delay:.3f} s (seed {seed})"
        if orphan:
            assert f"previous holder pid {p.pid} on host" in capsys.readouterr().err
            takeovers += 1
    with capsys.disabled():
        print(
            f"\n{N_TRIALS} trials, {killed} killed mid-run, {takeovers} locks taken over, "
            f"uninterrupted run {duration:.2f} s, kill-time seed {seed}"
        )
    assert killed >= N_TRIALS // 2, f"too few kills landed mid-run ({killed}); seed {seed}"
