"""``exp/commit_finished.py``: only finished runs' small files are committed, only once,
and nothing else that is staged goes with them."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("commit_finished", REPO / "exp" / "commit_finished.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_commits_finished_runs_small_files_only(tmp_path):
    mod = _module()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    (repo / "README").write_text("x\n")
    _git(repo, "add", "README")
    _git(repo, "commit", "-qm", "init")
    sweep = repo / "results" / "fig2" / "decision" / "pendulum"
    done, running = sweep / "mle" / "seed1", sweep / "mle" / "seed2"
    for d in (done, running):
        (d / "ckpt").mkdir(parents=True)
        (d / "ckpt" / "latest.pt").write_bytes(b"\0" * 100)
        (d / "run.yaml").write_text("seed: 1\n")
        (d / "progress.csv").write_text("stage\n0\n")
    (done / "done.json").write_text("{}\n")
    (done / "final.pt").write_bytes(b"\0")
    (repo / "README").write_text("staged, not to be committed\n")
    _git(repo, "add", "README")

    assert mod.commit_once(repo / "results", dry_run=True, repo=repo) == 1
    assert _git(repo, "log", "--oneline").count("\n") == 1  # a dry run commits nothing
    assert mod.commit_once(repo / "results", repo=repo) == 1
    committed = set(_git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert committed == {
        f"results/fig2/decision/pendulum/mle/seed1/{f}" for f in ("run.yaml", "progress.csv", "done.json")
    }
    assert "README" in _git(repo, "diff", "--cached", "--name-only")  # still staged, not committed
    assert mod.commit_once(repo / "results", repo=repo) == 0  # nothing new
    (running / "done.json").write_text("{}\n")
    (done / "progress.csv").write_text("stage\n0\n1\n")  # a resumed run rewrote it
    assert mod.commit_once(repo / "results", repo=repo) == 2
    assert "seed2/done.json" in _git(repo, "show", "--name-only", "--format=", "HEAD")
