"""Commit the small files of every finished run of a sweep, so the sweep resumes and
aggregates on any machine (a clean clone skips the finished runs; checkpoints stay local).

    python exp/commit_finished.py exp/slbo/decision_runs            # commit what finished
    python exp/commit_finished.py exp/slbo/decision_runs --dry-run  # list it only
    python exp/commit_finished.py exp/slbo/decision_runs --every 600  # every 10 min until killed
    python exp/commit_finished.py exp/mbpo/vagram_runs               # MBPO sweeps alike

A run is finished when its directory holds ``done.json`` (written last by
``vaml_ext.exp.run``). Its files in ``SMALL_FILES`` that are new or changed are committed,
and only those paths (``git commit -- <paths>``): whatever else is staged stays staged.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: what the aggregation and the resume of a finished run need; never checkpoints
SMALL_FILES = ("run.yaml", "done.json", "returns.csv", "progress.csv", "model_diag.csv", "config.yml", "va_model.csv")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def finished_runs(sweep: Path) -> list:
    return sorted(p.parent for p in sweep.rglob("done.json"))


def pending_paths(runs: list, repo: Path = REPO) -> list:
    """The small files of ``runs`` that git does not hold as they are (repo-relative)."""
    paths = [str((r / f).resolve().relative_to(repo)) for r in runs for f in SMALL_FILES if (r / f).is_file()]
    if not paths:
        return []
    changed = {
        line[3:] for line in _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths).splitlines()
    }
    return [p for p in paths if p in changed]


def commit_once(sweep: Path, dry_run: bool = False, repo: Path = REPO) -> int:
    """Commit the finished runs' new or changed small files; returns how many runs."""
    sweep = sweep.resolve()
    paths = pending_paths(finished_runs(sweep), repo)
    rel = sweep.relative_to(repo)
    if not paths:
        print(f"[commit-finished] {rel}: {len(finished_runs(sweep))} finished run(s), nothing new", flush=True)
        return 0
    new_runs = sorted({str(Path(p).parent.relative_to(rel)) for p in paths})
    print(f"[commit-finished] {rel}: {len(new_runs)} run(s) to commit: {', '.join(new_runs)}", flush=True)
    if dry_run:
        return len(new_runs)
    _git(repo, "add", "--", *paths)
    _git(
        repo,
        "commit",
        "-q",
        "-m",
        f"results: {len(new_runs)} finished run(s) of {rel} ({', '.join(new_runs)})",
        "--",
        *paths,
    )
    return len(new_runs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="a sweep's results root inside this repository")
    p.add_argument("--dry-run", action="store_true", help="list the runs to commit, commit nothing")
    p.add_argument("--every", type=float, default=0, metavar="S", help="repeat every S seconds until killed")
    args = p.parse_args(argv)
    sweep = args.sweep.resolve()
    try:
        sweep.relative_to(REPO)
    except ValueError:
        p.error(f"{args.sweep} is not inside the repository {REPO}")
    if not sweep.is_dir():
        p.error(f"{args.sweep}: no such directory")
    while True:
        try:
            commit_once(sweep, args.dry_run)
        except subprocess.CalledProcessError as e:  # e.g. another git command held the index
            if not args.every:
                raise SystemExit(f"[commit-finished] git {' '.join(e.cmd[1:3])} failed: {e.stderr.strip()}") from e
            print(f"[commit-finished] git failed ({e.stderr.strip()}); retrying in {args.every:.0f} s", flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
