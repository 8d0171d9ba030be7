"""One gridworld run in the run-directory format: files, done-skip, SIGKILL resume, truncation."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from vaml_ext.gridworld import run as run_mod
from vaml_ext.gridworld.dyna import DynaConfig, DynaTrainer, run_dyna
from vaml_ext.gridworld.objectives import METHODS
from vaml_ext.gridworld.run import run_gridworld
from vaml_ext.runlog.rundir import EVAL_FILE, read_eval

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]

# Small and quick, but exercising every part of the state: a value-aware method (refit
# optimiser), a stochastic evaluation (draws from the generator), several iterations.
DYNA = dict(
    real_steps_per_iter=50,
    model_updates_per_iter=5,
    policy_updates_per_iter=3,
    batch_size=64,
    value_update_interval=2,
    eval_greedy=False,
    eval_episodes=2,
)
RUN = dict(size=5, method="ma_l1", seed=1, eval_every=50, dyna=DYNA)
LONG = 3000  # env steps of the resume tests: 60 iterations, a few seconds


def _rows(run_dir):
    """The evaluation file as text rows, without the wall-clock column."""
    with open(Path(run_dir) / EVAL_FILE) as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def _files(run_dir):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(Path(run_dir).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("a") / "run"
    summary = run_gridworld(d, env_steps=LONG, progress=False, **RUN)
    return d, summary


@pytest.mark.slow
def test_run_writes_rundir_and_skips_when_done(tmp_path, monkeypatch, capsys):
    d = tmp_path / "run"
    s = run_gridworld(
        d,
        size=5,
        method="mle",
        seed=0,
        env_steps=300,
        eval_every=100,
        dyna={"model_updates_per_iter": 3, "policy_updates_per_iter": 2},
    )
    rows = read_eval(d)
    assert [r["env_steps"] for r in rows] == [0, 100, 200, 300]
    assert set(rows[0]) == {"env_steps", "return", "wall_time_s", "iteration", "model_loss", "v_start", "model_tv"}
    assert math.isnan(rows[0]["model_tv"]) and all(0 <= float(r["model_tv"]) <= 1 for r in rows[1:])
    assert all(b["wall_time_s"] >= a["wall_time_s"] for a, b in zip(rows, rows[1:]))
    assert list((d / "tb").glob("events.out.tfevents.*"))
    assert (d / "ckpt" / "latest.pt").is_file() and not list((d / "ckpt").glob("*.tmp"))
    assert (d / "run.yaml").is_file()
    done = json.loads((d / "done.json").read_text())
    assert done == s
    assert done["n_evals"] == 4 and done["env_steps"] == 300 and done["resumed"] is False
    assert done["final_return"] == rows[-1]["return"]
    err = capsys.readouterr().err
    assert "done: 300 env steps" in err  # RunProgress summary line
    # the two-line end-of-run summary (vaml_ext.runlog.tracking), same numbers as done.json
    assert done["best_return"] == max(r["return"] for r in rows) and done["run_dir"] == str(d.resolve())
    assert (
        f"[gridworld5/mle/seed0] finished: final return {done['final_return']:.1f}, best {done['best_return']:.1f}"
        in err
    ) and f"[gridworld5/mle/seed0] files: {d.resolve()}/ (returns.csv, done.json, run.yaml" in err

    before = _files(d)

    def no_training(*a, **k):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(run_mod, "DynaTrainer", no_training)
    assert (
        run_gridworld(
            d,
            size=5,
            method="mle",
            seed=0,
            env_steps=300,
            eval_every=100,
            dyna={"model_updates_per_iter": 3, "policy_updates_per_iter": 2},
        )
        == s
    )
    assert _files(d) == before


def test_single_run_is_run_dyna_with_a_batch_of_one(tmp_path):
    """The documented relation to the batched loop: seed = run_dyna's base_seed, batch of one."""
    run_gridworld(tmp_path / "r", env_steps=300, progress=False, **RUN)
    cfg = DynaConfig(env_steps=300, eval_every=50, **DYNA)
    ref = run_dyna(5, ["ma_l1"], [1], cfg, base_seed=1)
    got = read_eval(tmp_path / "r")
    assert [r["env_steps"] for r in got] == ref.steps
    assert [r["return"] for r in got] == [r[0] for r in ref.returns]


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_same_eval_csv(tmp_path, uninterrupted):
    a_dir, a_summary = uninterrupted
    b = tmp_path / "b"
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from vaml_ext.gridworld.run import run_gridworld\n"
        f"run_gridworld({str(b)!r}, env_steps={LONG}, progress=False, **{RUN!r})\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for a checkpoint and a few evaluation rows, then kill mid-run
            if proc.poll() is not None:
                pytest.fail(
                    f"run finished (rc {proc.returncode}) before it could be killed; raise LONG. "
                    f"stderr: {proc.stderr.read().decode()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint and partial eval.csv within 120 s")
            if (b / "ckpt" / "latest.pt").is_file() and (b / EVAL_FILE).is_file() and len(read_eval(b)) >= 4:
                break
            time.sleep(0.01)
        time.sleep(0.15)  # land somewhere inside an iteration, not right after a checkpoint
        if proc.poll() is not None:
            pytest.fail("run finished before the SIGKILL; raise LONG")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (b / "done.json").exists(), "the kill must land before the run finishes"
    n_partial = len(read_eval(b))
    n_total = LONG // RUN["eval_every"] + 1
    assert 4 <= n_partial < n_total, n_partial

    s = run_gridworld(b, env_steps=LONG, progress=False, **RUN)
    assert _rows(b) == _rows(a_dir)  # same rows, same text, nothing lost or duplicated
    assert len(_rows(b)) == n_total
    assert s["resumed"] is True and a_summary["resumed"] is False
    assert s["final_return"] == a_summary["final_return"] and s["n_evals"] == a_summary["n_evals"]
    assert s["wall_time_s"] > 0


def _crash_at(monkeypatch, n):
    """Make the n-th training iteration raise (a crash after n-1 iterations and their checkpoints)."""
    real_iteration = DynaTrainer.train_iteration
    calls = {"n": 0}

    def crashing_iteration(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("simulated crash")
        real_iteration(self)

    monkeypatch.setattr(DynaTrainer, "train_iteration", crashing_iteration)
    return lambda: monkeypatch.setattr(DynaTrainer, "train_iteration", real_iteration)


@pytest.mark.slow
def test_resume_truncates_rows_written_after_the_checkpoint(tmp_path, monkeypatch, uninterrupted):
    a_dir, _ = uninterrupted
    d = tmp_path / "run"
    restore = _crash_at(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(d, env_steps=LONG, progress=False, **RUN)
    restore()
    ckpt = torch.load(d / "ckpt" / "latest.pt", weights_only=True)
    assert ckpt["trainer"]["env_steps"] == 300 and not (d / "done.json").exists()
    with open(d / EVAL_FILE, "a") as f:  # a row the checkpoint does not know (as if written just before a kill)
        f.write("350,99.0,1.0,7,0.5,0.5\n")
    assert len(read_eval(d)) == 7 + 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # EvalLog(keep_until) alone does it: no repair needed
        run_gridworld(d, env_steps=LONG, progress=False, **RUN)
    rows = read_eval(d)
    assert 99.0 not in [r["return"] for r in rows]
    assert [r["env_steps"] for r in rows] == list(range(0, LONG + 1, 50))
    assert _rows(d) == _rows(a_dir)


def test_torn_last_line_is_repaired_from_the_checkpoint(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    run_gridworld(ref, env_steps=300, progress=False, **RUN)
    d = tmp_path / "run"
    restore = _crash_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(d, env_steps=300, progress=False, **RUN)
    restore()
    with open(d / EVAL_FILE, "a") as f:  # half a row: env_steps "1" would survive keep_until
        f.write("1")
    with pytest.warns(RuntimeWarning, match="rewritten from the checkpoint"):
        run_gridworld(d, env_steps=300, progress=False, **RUN)
    assert _rows(d) == _rows(ref)


@pytest.mark.parametrize("method", METHODS)
def test_crash_and_resume_matches_for_every_method(tmp_path, monkeypatch, method):
    """In-process crash (exception) after 3 iterations, then resume: every objective's state
    (e.g. the episode bookkeeping only the direct forms sample from) is restored exactly."""
    args = dict(RUN, method=method, env_steps=250)
    run_gridworld(tmp_path / "ref", progress=False, **args)
    restore = _crash_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(tmp_path / "run", progress=False, **args)
    restore()
    assert len(read_eval(tmp_path / "run")) == 4
    s = run_gridworld(tmp_path / "run", progress=False, **args)
    assert _rows(tmp_path / "run") == _rows(tmp_path / "ref") and s["resumed"]


def test_tensorboard_has_each_step_once_after_resume(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = tmp_path / "run"
    restore = _crash_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run_gridworld(d, env_steps=300, progress=False, **RUN)
    restore()
    run_gridworld(d, env_steps=300, progress=False, **RUN)
    acc = EventAccumulator(str(d / "tb"))
    acc.Reload()
    events = sorted(acc.Scalars("eval/return"), key=lambda e: e.step)
    assert [e.step for e in events] == list(range(0, 301, 50))
    assert [e.value for e in events] == pytest.approx([r["return"] for r in read_eval(d)])


def test_checkpoint_of_another_run_is_refused(tmp_path):
    d = tmp_path / "run"
    run_gridworld(d, env_steps=100, progress=False, **RUN)
    (d / "done.json").unlink()
    with pytest.raises(ValueError, match="different run \\(method: '.*' -> 'mle'\\).*restart=True") as e:
        run_gridworld(d, env_steps=100, progress=False, **dict(RUN, method="mle"))
    assert "delete" not in str(e.value)  # the checkpoint is kept; the remedy is restart=True


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="ma_l3"), "method"),
        (dict(method="slbo"), "method"),
        (dict(size=3), "size"),
        (dict(size=5.5), "size"),
        (dict(seed=-1), "seed"),
        (dict(seed=True), "seed"),
        (dict(env_steps=0), "env_steps"),
        (dict(env_steps=10.0), "env_steps"),
        (dict(eval_every=-100), "eval_every"),
        (dict(dyna={"lr": 0.1}), "unknown dyna option"),
        (dict(dyna={"model_lr": -1.0}), "model_lr"),
        (dict(dyna={"env_steps": 5}), "dyna.env_steps"),
        (dict(dyna=[1, 2]), "dyna"),
    ],
)
def test_invalid_inputs_fail_before_any_work(tmp_path, kwargs, match):
    args = dict(size=5, method="mle", seed=0, env_steps=100, eval_every=50, dyna={}, progress=False)
    args.update(kwargs)
    d = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        run_gridworld(d, **args)
    assert not d.exists()


def test_naive_variant_runs_ma_l1_without_refit(tmp_path):
    """``ma_l1_naive`` = the ma_l1 objective with Algorithm 2's refit off (value_update_interval 0)."""
    import yaml

    d = tmp_path / "naive"
    dyna = {"model_updates_per_iter": 5, "policy_updates_per_iter": 1, "model": "mlp", "mlp_hidden": 4}
    run_gridworld(d, size=5, method="ma_l1_naive", seed=0, env_steps=100, eval_every=100, dyna=dyna, progress=False)
    run = yaml.safe_load((d / "run.yaml").read_text())
    assert run["method"] == "ma_l1_naive" and run["dyna"]["value_update_interval"] == 0
    assert run["dyna"]["model"] == "mlp"
    with pytest.raises(ValueError, match="ma_l1_naive"):
        run_gridworld(tmp_path / "x", size=5, method="ma_l2_naive", seed=0, env_steps=100, eval_every=100)
