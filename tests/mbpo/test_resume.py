"""Checkpoint/resume of MBPO runs (vaml_ext.mbpo.checkpoint over the resume patch of patches/mbrl-lib).

A run that dies right after a checkpoint -- by an exception in-process, or by SIGKILL in
a subprocess -- and is started again in the same work dir must produce exactly the
evaluation rows and the final weights of an uninterrupted run.
"""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support import kill_seed, lock_held_elsewhere, sigkill_when
from vaml_ext.mbpo import checkpoint as ckpt_mod
from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, run_mbpo

REPO = Path(__file__).resolve().parents[2]
ENV = "mbpo_inv_pendulum"


def overrides(loss, steps=400):
    return [
        "device=cpu",
        "seed=0",
        *SMOKE_OVERRIDES,
        f"overrides.model_loss={loss}",
        "overrides.checkpoint_every=1",
        f"overrides.num_steps={steps}",
    ]


def rows(run_dir):
    with open(Path(run_dir) / "returns.csv") as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def final_state(run_dir):
    st = torch.load(Path(run_dir) / "ckpt" / "latest.pt", weights_only=False)
    return st["model"], st["agent"]["policy"][1], st["agent"]["critic"][1]


def assert_same_state(a, b):
    for da, db in zip(a, b):
        assert da.keys() == db.keys()
        for k in da:
            assert torch.equal(da[k], db[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = {}
    for loss in ("mle", "ma_l1"):
        d = tmp_path_factory.mktemp(f"ref_{loss}")
        run_mbpo(compose(ENV, overrides(loss)), d)
        out[loss] = d
    return out


class _Died(Exception):
    pass


def die_after_checkpoint(monkeypatch, tmp_path, loss, epoch):
    """Run ``loss`` into ``tmp_path`` and let it die (an exception) right after writing the
    checkpoint of ``epoch``; then restore the recorder, so the next run resumes."""
    save = ckpt_mod.Checkpointer._save

    def save_then_die(self, ctx):
        save(self, ctx)
        if ctx.epoch == epoch:
            raise _Died

    monkeypatch.setattr(ckpt_mod.Checkpointer, "_save", save_then_die)
    with pytest.raises(_Died):
        run_mbpo(compose(ENV, overrides(loss)), tmp_path)
    monkeypatch.setattr(ckpt_mod.Checkpointer, "_save", save)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mle", "ma_l1"])
def test_resume_after_death_is_bit_identical(reference, tmp_path, monkeypatch, loss):
    die_after_checkpoint(monkeypatch, tmp_path, loss, epoch=1)
    assert [r["env_steps"] for r in rows(tmp_path)] == ["100", "200"]
    run_mbpo(compose(ENV, overrides(loss)), tmp_path, silent=False)  # with mbrl's logger
    ref = rows(reference[loss])
    assert len(ref) == 4
    assert rows(tmp_path) == ref
    assert_same_state(final_state(tmp_path), final_state(reference[loss]))
    # mbrl's own results.csv (when its logger runs) is refilled with the rows before the checkpoint
    with open(tmp_path / "results.csv") as f:
        assert [float(r["env_step"]) for r in csv.DictReader(f)] == [99, 199, 299, 399]


@pytest.mark.slow
def test_rows_after_the_checkpoint_are_dropped_on_resume(reference, tmp_path, monkeypatch):
    die_after_checkpoint(monkeypatch, tmp_path, "mle", epoch=1)
    # a row the dead run wrote after its checkpoint (killed between the two writes)
    with open(tmp_path / "returns.csv", "a") as f:
        f.write("300,-1.0,9.9,2,1,999\n")
    out = run_mbpo(compose(ENV, overrides("mle")), tmp_path)  # silent: plugins get no logger
    assert rows(tmp_path) == rows(reference["mle"])
    # mbrl's results.csv still holds every evaluation, numbered as an uninterrupted run's
    with open(reference["mle"] / "results.csv") as f:
        ref_results = list(csv.DictReader(f))
    assert len(ref_results) == 4
    with open(tmp_path / "results.csv") as f:
        assert list(csv.DictReader(f)) == ref_results
    assert [r["env_step"] for r in out["results"]] == [99, 199, 299, 399]


@pytest.mark.slow
def test_sigkill_then_resume(reference, tmp_path):
    """A real `kill -9` while the run is between checkpoints."""
    code = (
        "import torch; torch.set_num_threads(1);"
        "from vaml_ext.mbpo.runner import compose, run_mbpo;"
        f"run_mbpo(compose({ENV!r}, {overrides('ma_l1', steps=400)!r}), {str(tmp_path)!r})"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert sigkill_when(proc, (tmp_path / "ckpt" / "latest.pt").is_file, timeout=240) == -signal.SIGKILL
    n_before = len(rows(tmp_path))
    assert 1 <= n_before < 4, f"kill did not land mid-run ({n_before} rows)"
    run_mbpo(compose(ENV, overrides("ma_l1", steps=400)), tmp_path)
    assert rows(tmp_path) == rows(reference["ma_l1"])
    assert_same_state(final_state(tmp_path), final_state(reference["ma_l1"]))


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_config(reference, tmp_path):
    import shutil

    shutil.copytree(reference["mle"] / "ckpt", tmp_path / "ckpt")
    from vaml_ext.runlog.ckpt import CheckpointOfAnotherRun

    with pytest.raises(CheckpointOfAnotherRun, match="overrides.model_loss: 'mle' -> 'ma_l1'.*overrides.resume=false"):
        run_mbpo(compose(ENV, overrides("ma_l1")), tmp_path)


@pytest.mark.slow
def test_resume_false_starts_over(reference, tmp_path):
    import shutil

    shutil.copytree(reference["mle"] / "ckpt", tmp_path / "ckpt")
    run_mbpo(compose(ENV, overrides("mle") + ["overrides.resume=false"]), tmp_path)
    assert rows(tmp_path) == rows(reference["mle"])


@pytest.mark.slow
def test_returns_csv_without_checkpoints(tmp_path):
    o = ["device=cpu", "seed=0", *SMOKE_OVERRIDES]
    run_mbpo(compose(ENV, o), tmp_path)
    assert [r["env_steps"] for r in rows(tmp_path)] == ["100", "200"]
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("bad", ["overrides.checkpoint_every=-1", "overrides.resume=3", "overrides.progress_bar=maybe"])
def test_invalid_run_management_keys(tmp_path, bad):
    key = bad.split("=")[0]
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        run_mbpo(compose(ENV, ["device=cpu", *SMOKE_OVERRIDES, bad]), tmp_path)


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, monkeypatch, capsys):
    """ckpt/latest.pt damaged: it is named and set aside, the run resumes from ckpt/previous.pt
    (rows after it truncated) and still ends bit-identical to an uninterrupted run."""
    die_after_checkpoint(monkeypatch, tmp_path, "mle", epoch=2)
    latest = tmp_path / "ckpt" / "latest.pt"
    assert torch.load(tmp_path / "ckpt" / "previous.pt", weights_only=False)["loop"]["epoch"] == 1
    latest.write_bytes(latest.read_bytes()[:1000])
    assert len(rows(tmp_path)) == 3
    run_mbpo(compose(ENV, overrides("mle")), tmp_path)
    assert rows(tmp_path) == rows(reference["mle"])
    assert_same_state(final_state(tmp_path), final_state(reference["mle"]))
    out = capsys.readouterr()
    assert f"checkpoint {latest} could not be loaded" in out.err and "env step 200" in out.out
    assert len(list((tmp_path / "ckpt").glob("latest.pt.unreadable-*"))) == 1


def test_no_loadable_checkpoint_stops_and_names_the_start_over_flag(reference, tmp_path):
    import shutil

    from vaml_ext.runlog.ckpt import NoUsableCheckpoint

    shutil.copytree(reference["mle"] / "ckpt", tmp_path / "ckpt")
    for p in (tmp_path / "ckpt").glob("*.pt"):
        p.write_bytes(b"")
    with pytest.raises(NoUsableCheckpoint, match=r"(?s)latest\.pt.*previous\.pt.*overrides\.resume=false"):
        run_mbpo(compose(ENV, overrides("mle")), tmp_path)


def test_second_writer_is_refused(tmp_path):
    from vaml_ext.runlog.lock import RunInUse

    with lock_held_elsewhere(tmp_path) as holder:
        with pytest.raises(RunInUse, match=f"in use by pid {holder.pid}"):
            run_mbpo(compose(ENV, overrides("mle")), tmp_path)
        assert not (tmp_path / "returns.csv").exists()


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume(reference, tmp_path):
    """One randomised kill trial: SIGKILL a random time after the first checkpoint, restart;
    the rows and final weights equal the uninterrupted run's and the dead run's lock does not
    block the restart. Replay a failure with VAML_KILL_SEED=<seed>."""
    seed, rng = kill_seed()
    delay = rng.uniform(0.0, 3.0)
    print(f"SIGKILL {delay:.2f} s after the first checkpoint", file=sys.stderr)
    code = (
        "import torch; torch.set_num_threads(1);"
        "from vaml_ext.mbpo.runner import compose, run_mbpo;"
        f"run_mbpo(compose({ENV!r}, {overrides('mle')!r}), {str(tmp_path)!r})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sigkill_when(proc, (tmp_path / "ckpt" / "latest.pt").is_file, delay=delay, timeout=240)
    run_mbpo(compose(ENV, overrides("mle")), tmp_path)
    assert rows(tmp_path) == rows(reference["mle"]), f"seed {seed}"
    assert_same_state(final_state(tmp_path), final_state(reference["mle"]))


def _write(path, header, lines):
    path.write_text("\n".join([header, *lines]) + "\n")


def test_complete_results_restores_only_a_tail_of_the_record(tmp_path):
    from vaml_ext.mbpo.runner import complete_results

    ret_header = "env_steps,return,wall_time_s,epoch,rollout_length,updates_made"
    _write(tmp_path / "returns.csv", ret_header, ["100,5.0,1.0,0,1,10", "200,7.5,2.0,1,1,20", "300,9.0,3.0,2,1,30"])
    res_header = "env_step,episode_reward,epoch,rollout_length,step"
    complete = [res_header, "99.0,5.0,0.0,1.0,1", "199.0,7.5,1.0,1.0,2", "299.0,9.0,2.0,1.0,3"]
    foreign = ["199.0,7.5,1.0,1.0,1", "299.0,8.0,2.0,1.0,2"]  # last return differs: not this record's tail
    _write(tmp_path / "results.csv", res_header, foreign)
    assert not complete_results(tmp_path)
    assert (tmp_path / "results.csv").read_text().splitlines() == [res_header, *foreign]
    _write(tmp_path / "results.csv", res_header, ["299.0,9.0,2.0,1.0,1"])  # the rows after a resume
    assert complete_results(tmp_path)
    assert (tmp_path / "results.csv").read_text().splitlines() == complete
    assert not complete_results(tmp_path)  # complete: nothing to do
    (tmp_path / "results.csv").write_text("")  # resumed after its last evaluation: reopened, never written
    assert complete_results(tmp_path)
    assert (tmp_path / "results.csv").read_text().splitlines() == complete
    (tmp_path / "results.csv").unlink()  # no results.csv: not mbrl's run, nothing is created
    assert not complete_results(tmp_path) and not (tmp_path / "results.csv").exists()
