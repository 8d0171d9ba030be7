"""The entry point: run directory contents, resume after a kill, and a short learning test."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.slbo.conftest import REPO, SLBO_SRC, run_slbo
from tests.support import sigkill_when

SMOKE = [
    "slbo.n_iters=2",
    "slbo.n_model_iters=10",
    "slbo.n_policy_iters=1",
    "rollout.n_train_samples=500",
    "rollout.n_test_samples=400",
    "plan.max_steps=50",
    "runner.max_steps=50",
    "plan.n_trpo_samples=400",
    "rollout.max_buf_size=5000",
]


def _rows(log_dir):
    with open(os.path.join(log_dir, "progress.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_run_dir_contents_and_resume(tmp_path):
    log_dir = tmp_path / "run"
    args = [
        "-c",
        "configs/algos/slbo.yml",
        "configs/envs/pendulum.yml",
        "-s",
        f"log_dir={log_dir}",
        "seed=3",
        "slbo.n_stages=1",
        *SMOKE,
    ]
    out = run_slbo(args, SLBO_SRC, SLBO_SRC)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in ["config.yml", "diff.patch", "log.txt", "progress.csv", "ckpt/latest.pt", "stage-0.pt", "final.pt"]:
        assert (log_dir / name).exists(), name
    assert any(p.name.startswith("events.out.tfevents") for p in (log_dir / "tb").iterdir())
    cfg = yaml.safe_load((log_dir / "config.yml").read_text())
    assert cfg["env"]["id"] == "Pendulum-v1" and cfg["slbo"]["n_stages"] == 1
    assert cfg["model"]["multi_step"] == 2 and cfg["TRPO"]["ent_coef"] == 0.005  # algos/slbo.yml merged
    assert len(cfg["commit"]) == 40
    assert [r["stage"] for r in _rows(log_dir)] == ["0", "1"]

    # same log_dir, more stages: resumes after stage 0 instead of starting over
    args[args.index("slbo.n_stages=1")] = "slbo.n_stages=3"
    out = run_slbo(args, SLBO_SRC, SLBO_SRC)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Resuming from" in out.stdout and "starting stage 1" in out.stdout
    assert "Starting Stage 0 " not in out.stdout
    rows = _rows(log_dir)
    assert [r["stage"] for r in rows] == ["0", "1", "2", "3"]
    assert [int(r["n_real_samples"]) for r in rows] == [0, 500, 1000, 1500]


@pytest.mark.slow
def test_killed_run_resumes_from_last_stage(tmp_path):
    log_dir = tmp_path / "run"
    args = [
        "-c",
        "configs/algos/slbo.yml",
        "configs/envs/cartpole.yml",
        "-s",
        f"log_dir={log_dir}",
        "seed=4",
        "slbo.n_stages=30",
        *SMOKE,
    ]
    env = dict(os.environ, PYTHONPATH=f"{SLBO_SRC}{os.pathsep}{REPO}", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "slbo.main", *args],
        cwd=SLBO_SRC,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    latest = log_dir / "ckpt" / "latest.pt"
    sigkill_when(proc, latest.exists, delay=1.0, timeout=240, group=True)
    import torch

    done_stage = torch.load(latest, weights_only=False)["stage"]
    assert done_stage < 29
    args[args.index("slbo.n_stages=30")] = f"slbo.n_stages={done_stage + 2}"
    out = run_slbo(args, SLBO_SRC, SLBO_SRC)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"starting stage {done_stage + 1}" in out.stdout
    stages = [int(r["stage"]) for r in _rows(log_dir)]
    assert stages == list(range(done_stage + 3))  # no duplicated / missing stage rows


@pytest.mark.slow
def test_slbo_beats_random_policy_on_cartpole(tmp_path):
    """Short learning test (fixed seed): 2 SLBO stages on continuous CartPole (200-step episodes)."""
    from slbo.envs.batched_env import BatchedEnv
    from slbo.partial_envs import make_env
    from slbo.policies.uniform_policy import UniformPolicy
    from slbo.utils.runner import Runner

    np.random.seed(0)
    runner = Runner(
        BatchedEnv([make_env("ContinuousCartPole-v1") for _ in range(4)]), max_steps=200, rescale_action=True
    )
    _, infos = runner.run(UniformPolicy(1), 2000)
    random_return = float(np.mean([i["return"] for i in infos]))

    log_dir = tmp_path / "learn"
    args = [
        "-c",
        "configs/algos/slbo.yml",
        "configs/envs/cartpole.yml",
        "-s",
        f"log_dir={log_dir}",
        "seed=1",
        "slbo.n_stages=2",
        "slbo.n_iters=4",
        "slbo.n_model_iters=100",
        "slbo.n_policy_iters=5",
        "rollout.n_train_samples=1000",
        "rollout.n_test_samples=2000",
        "plan.max_steps=200",
        "runner.max_steps=200",
        "plan.n_trpo_samples=2000",
    ]
    out = run_slbo(args, SLBO_SRC, SLBO_SRC)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = _rows(log_dir)
    final = float(rows[-1]["real_return_mean"])
    print(f"random policy {random_return:.1f}; SLBO per stage {[round(float(r['real_return_mean']), 1) for r in rows]}")
    assert random_return < 40
    assert final > 3 * random_return and final >= 100
