"""vaml_ext.runlog: the one-writer lock, rotated checkpoints with recovery, failed writes."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vaml_ext.runlog import atomic
from vaml_ext.runlog.atomic import RunWriteError, append_line, atomic_write_text
from vaml_ext.runlog.ckpt import CheckpointStore, NoUsableCheckpoint
from vaml_ext.runlog.lock import HOLDER_FILE, RunInUse, RunLock, child_env

REPO = Path(__file__).resolve().parents[2]


def _py(code, env=None, timeout=60):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


LOCK = "from vaml_ext.runlog.lock import RunLock, RunInUse\n"


# ---- lock ---------------------------------------------------------------------------------
def test_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / HOLDER_FILE).read_text())
        assert holder["pid"] == os.getpid()
        t0 = time.perf_counter()
        r = _py(LOCK + f"RunLock({str(tmp_path)!r}).acquire()")
        seconds = time.perf_counter() - t0
    assert r.returncode != 0
    assert f"in use by pid {os.getpid()} on host {holder['host']}" in r.stderr and holder["started"] in r.stderr
    print(f"second process (python start included) exited after {seconds:.2f} s")
    assert not (tmp_path / HOLDER_FILE).exists()  # a clean release removes the record
    RunLock(tmp_path).acquire().release()  # and the lock is free again


def test_dead_holder_is_taken_over_with_a_line(tmp_path, capsys):
    r = _py(
        LOCK + f"import os, signal\nRunLock({str(tmp_path)!r}).acquire()\nprint(os.getpid(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert r.returncode == -9
    dead = int(r.stdout.split()[0])
    with RunLock(tmp_path) as lock:
        assert lock.took_over["pid"] == dead
    err = capsys.readouterr().err
    assert f"previous holder pid {dead} on host" in err and "gone" in err and "taking over" in err


def test_requeue_of_the_same_task_waits_for_its_old_incarnation(tmp_path, monkeypatch):
    """A cluster requeue (same SLURM job id) may start while the old process is still exiting:
    it waits for it instead of failing; another task is refused at once."""
    env = dict(os.environ, SLURM_JOB_ID="4242")
    env.pop("SLURM_ARRAY_JOB_ID", None)
    old = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LOCK + f"import time\nl = RunLock({str(tmp_path)!r}).acquire()\n"
            "print('locked', flush=True)\ntime.sleep(1.5)\n",
        ],
        env=dict(env, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert old.stdout.readline().strip() == "locked"
        monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
        monkeypatch.setenv("SLURM_JOB_ID", "9999")
        with pytest.raises(RunInUse, match="task slurm:4242"):
            RunLock(tmp_path).acquire()
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        with RunLock(tmp_path, requeue_wait_s=30) as lock:
            assert old.wait(timeout=10) == 0  # got it once the old incarnation had exited
            assert lock.took_over["pid"] == old.pid  # it exited without releasing: named as gone
    finally:
        old.kill()
        old.wait()


def test_lock_is_reentrant_and_inherited_by_children_started_for_it(tmp_path):
    with RunLock(tmp_path):
        with RunLock(tmp_path):  # the sweep job runs the backend in-process
            pass
        assert (tmp_path / HOLDER_FILE).exists()  # the inner release did not drop it
        code = LOCK + f"RunLock({str(tmp_path)!r}).acquire().release(); print('ok')"
        assert _py(code, env=child_env(tmp_path)).stdout.strip() == "ok"
        assert "in use by pid" in _py(code).stderr  # a stranger is refused


# ---- checkpoints ------------------------------------------------------------------------
def test_checkpoints_rotate_and_an_unreadable_latest_falls_back(tmp_path, capsys):
    store = CheckpointStore(tmp_path / "ckpt", restart_hint="pass --restart")
    assert store.load() == (None, None)
    for step in (1, 2, 3):
        store.save({"step": step})
    assert torch.load(store.latest)["step"] == 3 and torch.load(store.previous)["step"] == 2
    data = store.latest.read_bytes()
    store.latest.write_bytes(data[: len(data) // 2])  # a partial copy
    path, st = store.load()
    assert path == store.previous and st["step"] == 2
    aside = list((tmp_path / "ckpt").glob("latest.pt.unreadable-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == len(data) // 2  # kept, not deleted
    err = capsys.readouterr().err
    assert str(store.latest) in err and "set aside" in err and "resuming from previous.pt" in err


def test_no_loadable_checkpoint_stops_naming_files_and_the_flag(tmp_path):
    store = CheckpointStore(tmp_path, restart_hint="pass --restart")
    store.save({"step": 1})
    store.save({"step": 2})
    store.latest.write_bytes(b"garbage")
    store.previous.write_bytes(b"")
    for _ in range(2):  # stopping renames nothing: running again stops again, never restarts silently
        with pytest.raises(NoUsableCheckpoint) as e:
            store.load()
        assert str(store.latest) in str(e.value) and str(store.previous) in str(e.value)
        assert "pass --restart" in str(e.value)
    store.set_aside_all()
    assert store.load() == (None, None) and len(list(tmp_path.glob("*.discarded-*"))) == 2


# ---- failed writes ----------------------------------------------------------------------
def _enospc_on(monkeypatch, name):
    """fsync of a file whose name contains ``name`` fails with ENOSPC (the write call's error)."""
    real = os.fsync

    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)


def test_failed_writes_keep_the_previous_files(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "ckpt")
    store.save({"step": 1})
    store.save({"step": 2})
    atomic_write_text(tmp_path / "done.json", "old\n")
    append_line(tmp_path / "returns.csv", "a,b\n1,2\n")
    _enospc_on(monkeypatch, str(tmp_path))
    with pytest.raises(RunWriteError, match=r"latest\.pt.*No space left on device"):
        store.save({"step": 3})
    with pytest.raises(RunWriteError, match=r"done\.json.*No space left on device"):
        atomic_write_text(tmp_path / "done.json", "new\n")
    with pytest.raises(RunWriteError, match=r"returns\.csv.*No space left on device"):
        append_line(tmp_path / "returns.csv", "3,4\n")
    monkeypatch.undo()
    assert torch.load(store.latest)["step"] == 2 and torch.load(store.previous)["step"] == 1
    assert (tmp_path / "done.json").read_text() == "old\n"
    assert (tmp_path / "returns.csv").read_text() == "a,b\n1,2\n"  # the half-written row was cut back
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "done.json",
        "latest.pt",
        "previous.pt",
        "returns.csv",
    ]  # no temporary files left


def test_plain_config_resolves_what_resolves_and_keeps_the_rest():
    """An MBPO run's composed config: upstream's action_optimizer group interpolates
    overrides.cem_* that MBPO overrides do not define; the run record must not fail on it."""
    from omegaconf import OmegaConf

    from vaml_ext.runlog.rundir import plain_config

    cfg = OmegaConf.create(
        {
            "seed": 3,
            "overrides": {"num_steps": 10, "lr": "${seed}"},
            "action_optimizer": {"population_size": "${overrides.cem_population_size}", "device": "cpu"},
            "schedule": [1, "${seed}"],
            "lr": "${overrides.missing_lr}",
        }
    )
    from omegaconf.errors import InterpolationResolutionError

    with pytest.raises(InterpolationResolutionError):
        OmegaConf.to_container(cfg, resolve=True)
    out = plain_config(cfg)
    assert out["overrides"] == {"num_steps": 10, "lr": 3} and out["seed"] == 3
    assert out["action_optimizer"]["population_size"] == "${overrides.cem_population_size}"
    assert out["schedule"] == [1, 3] and type(out["schedule"]) is list  # lists become plain lists too
    assert out["lr"] == "${overrides.missing_lr}"  # a single unresolvable value, kept as written


def test_checkpoint_config_check_names_keys_and_ignores_mutable_ones():
    from vaml_ext.runlog.ckpt import CheckpointOfAnotherRun, check_checkpoint_config, flat_config

    assert flat_config({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    check_checkpoint_config("p.pt", {"a": {"b": 1}, "x": 1}, {"a": {"b": 1}, "x": 2}, "", ignore=lambda k: k == "x")
    with pytest.raises(
        CheckpointOfAnotherRun, match=r"p\.pt was written by a different run \(a\.b: 1 -> 2\).*go on"
    ) as e:
        check_checkpoint_config("p.pt", {"a": {"b": 1}}, {"a": {"b": 2}}, "go on")
    assert isinstance(e.value, ValueError)
    many_old, many_new = {f"k{i}": i for i in range(10)}, {f"k{i}": -i - 1 for i in range(10)}
    with pytest.raises(CheckpointOfAnotherRun, match=r"k7: 7 -> -8, \.\.\.\)") as e:
        check_checkpoint_config("p.pt", many_old, many_new, "")
    assert "k8" not in str(e.value)
