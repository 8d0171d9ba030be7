"""A resumed SLBO run is bit-identical to an uninterrupted one (patches/slbo/0009, 0010).

The collect and dev runners are never reset by the stage loop, so with episodes longer
than a stage's samples (here 130 train / 70 dev samples per stage, 50-step episodes) they
continue across stage boundaries; every env also has its own simulator state and random
generators. Each case runs the same small run (a) uninterrupted and (b) interrupted after
a checkpoint, then resumed with the same command, and compares ``progress.csv`` and
``model_diag.csv`` (all columns but wall-clock ones), ``final.pt`` and the last checkpoint.

* Hopper (MuJoCo, early termination), ``ma_l1`` with Algorithm 2's refit every 3 of the
  5 model updates per stage (so the refit schedule crosses stages): killed with SIGKILL
  in the middle of a later stage;
* continuous CartPole (classic control, early termination), ``slbo``: finished after one
  stage, then re-run with more stages (a finished run's final evaluation must not leak
  into the continued run).
"""

from __future__ import annotations

import csv
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.slbo.conftest import REPO

SMALL = [
    "seed=3",
    "slbo.n_iters=1",
    "slbo.n_model_iters=5",
    "slbo.n_policy_iters=1",
    "rollout.n_train_samples=130",
    "rollout.n_dev_samples=70",
    "rollout.n_test_samples=200",
    "runner.max_steps=50",
    "plan.max_steps=20",
    "plan.n_trpo_samples=80",
    "rollout.max_buf_size=2000",
    "vaml.value_update_interval=3",
    "vaml.n_refit_samples=40",
]
N_STAGES = 4
#: wall-clock columns (progress.csv, model_diag.csv) and checkpoint entries
TIME_KEYS = {
    "prev_stage_time_s",
    "prev_model_time_s",
    "prev_policy_time_s",
    "wall_time_s",
    "refit_s",
    "refit_s_total",
    "times",
    "seconds",
    "seen_refit_s",
}


def _cmd(args, log_dir, n_stages):
    return [sys.executable, "-m", "vaml_ext.slbo.run", *args, *SMALL, f"slbo.n_stages={n_stages}", f"log_dir={log_dir}"]


def _env(tree):
    return dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _run(tree, args, log_dir, n_stages):
    out = subprocess.run(
        _cmd(args, log_dir, n_stages), cwd=REPO, env=_env(tree), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _csv(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in csv.DictReader(f)]


def _strip(x):
    """The checkpoint without wall-clock entries; MuJoCo's pickled MjData as its state arrays
    (the pickle also holds solver timers)."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k in TIME_KEYS:
                continue
            if k == "mujoco":
                d = pickle.loads(v)
                v = {f: np.array(getattr(d, f)) for f in ("time", "qpos", "qvel", "act", "qacc_warmstart", "xpos")}
            out[k] = _strip(v)
        return out
    if isinstance(x, (list, tuple)):
        return [_strip(v) for v in x]
    return x


def _diffs(a, b, path="", out=None):
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys(), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'uninterrupted' if k in a else 'resumed'}")
            else:
                _diffs(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diffs(x, y, f"{path}[{i}]", out)
    elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if not torch.equal(a, b):
            out.append(f"{path}: tensors differ")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            out.append(f"{path}: arrays differ")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")
    return out


def compare_runs(full, resumed):
    """Differences between two finished run directories, wall-clock aside (empty: identical)."""
    out = []
    for name in ("progress.csv", "model_diag.csv"):
        a, b = _csv(full / name), _csv(resumed / name)
        if len(a) != len(b):
            out.append(f"{name}: {len(a)} rows != {len(b)} rows")
        for ra, rb in zip(a, b):
            if ra != rb:
                keys = [k for k in ra if ra[k] != rb.get(k)]
                out.append(f"{name} stage {ra['stage']}: " + ", ".join(f"{k} {ra[k]} != {rb.get(k)}" for k in keys))
    out += _diffs(torch.load(full / "final.pt"), torch.load(resumed / "final.pt"), "final.pt")
    out += _diffs(
        _strip(torch.load(full / "ckpt" / "latest.pt", weights_only=False)),
        _strip(torch.load(resumed / "ckpt" / "latest.pt", weights_only=False)),
        "latest.pt",
    )
    return out


def _kill_during_stage(tree, args, log_dir, stage):
    """Start the N-stage run and SIGKILL it once it is inside ``stage`` (its model phase has
    written a model_diag.csv row); returns the stage of the checkpoint it left."""
    proc = subprocess.Popen(
        _cmd(args, log_dir, N_STAGES),
        cwd=REPO,
        env=_env(tree),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    diag, deadline = log_dir / "model_diag.csv", time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if diag.exists() and any(int(r["stage"]) >= stage for r in _csv(diag)):
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (log_dir / "done").exists(), "the run finished before the kill; nothing was resumed"
    return torch.load(log_dir / "ckpt" / "latest.pt", weights_only=False)["stage"]


@pytest.mark.slow
def test_killed_hopper_run_resumes_bit_identical(tree, tmp_path):
    args = ["variant=ma_l1", "env=hopper"]
    _run(tree, args, tmp_path / "full", N_STAGES)
    done_stage = _kill_during_stage(tree, args, tmp_path / "resumed", stage=2)
    assert 1 <= done_stage < N_STAGES - 1
    out = _run(tree, args, tmp_path / "resumed", N_STAGES)
    assert f"stage {done_stage} done, starting stage {done_stage + 1}" in out.stdout
    diffs = compare_runs(tmp_path / "full", tmp_path / "resumed")
    assert not diffs, "resumed run differs:\n  " + "\n  ".join(diffs[:20])
    rows = _csv(tmp_path / "resumed" / "progress.csv")
    assert [int(r["stage"]) for r in rows] == list(range(N_STAGES + 1))
    assert int(rows[-1]["refits_total"]) == N_STAGES * 5 // 3  # the refit schedule ran across the kill
    # episodes did span stage boundaries: the collect runner stopped mid-episode
    ckpt = torch.load(tmp_path / "full" / "ckpt" / "latest.pt", weights_only=False)
    assert ckpt["runners"]["collect"]["n_steps"].item() > 0


@pytest.mark.slow
def test_finished_cartpole_run_continued_is_bit_identical(tree, tmp_path):
    args = ["variant=slbo", "env=cartpole"]
    _run(tree, args, tmp_path / "full", N_STAGES)
    _run(tree, args, tmp_path / "resumed", 1)  # finishes: final evaluation, done
    out = _run(tree, args, tmp_path / "resumed", N_STAGES)
    assert "stage 0 done, starting stage 1" in out.stdout
    diffs = compare_runs(tmp_path / "full", tmp_path / "resumed")
    assert not diffs, "resumed run differs:\n  " + "\n  ".join(diffs[:20])
