"""Upstream's own test suite against a patched tree, with a reviewed list of known failures.

    python -m vaml_ext.patching.upstream_tests mbrl-lib --python .venv/bin/python
    python -m vaml_ext.patching.upstream_tests mbrl-lib-dev3 --python .venv-paper/bin/python

The suite is the ``tests/`` of the pinned upstream archive (the sdist's own, verified by its
sha256 when the tree was built; nothing of it is copied into this repository), run by
``pytest`` in the built tree ``third_party/<dest>`` (``vaml-patch apply <name>``) with the
given interpreter. ``patches/<name>/upstream-tests.toml`` lists what may not pass, each with
its reason:

* ``[[ignore]]`` -- a test module that cannot be collected on this stack (``path``,
  ``reason``), e.g. one importing gym 0.17;
* ``[[known]]`` -- a test that fails (``test``: its pytest id, ``match``: a regex its failure
  message must match, ``reason``; ``unless_program``: only where that system program is
  missing).

Exit status 0 only when every other test passes, every known test fails *for its stated
reason*, and every ignored module exists: a known failure that now passes or fails
differently is reported, so the list stays short and true.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from vaml_ext.patching.spec import load_spec

LIST_FILE = "upstream-tests.toml"


@dataclass
class Outcome:
    test: str
    status: str  # passed | failed | error | skipped
    message: str = ""


@dataclass
class Report:
    outcomes: list[Outcome]
    ignored: list[str]
    known: int  # failures listed as known on this machine
    problems: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def load_list(patch_dir: Path) -> dict:
    """The list, less the entries that do not apply on this machine: an entry with
    ``unless_program = "<name>"`` (a failure that a missing system program causes) applies
    only where that program is not on ``PATH``; where it is, the test must pass."""
    import shutil

    path = patch_dir / LIST_FILE
    if not path.is_file():
        return {"ignore": [], "known": []}
    data = tomllib.loads(path.read_text())
    for entry in data.get("ignore", []) + data.get("known", []):
        if not entry.get("reason"):
            raise SystemExit(f"{path}: every entry needs a reason: {entry}")

    def applies(entry):
        program = entry.get("unless_program")
        return program is None or shutil.which(program) is None

    return {
        "ignore": [e for e in data.get("ignore", []) if applies(e)],
        "known": [e for e in data.get("known", []) if applies(e)],
    }


def parse_junit(xml_path: Path) -> list[Outcome]:
    out = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        test = f"{file}::{case.get('name')}"
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = {"failure": "failed"}.get(tag, tag)
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        out.append(Outcome(test, status, message))
    return out


def judge(outcomes: list[Outcome], known: list[dict]) -> list[str]:
    """What breaks the contract: unexpected failures, known ones passing or failing otherwise."""
    by_test: dict[str, dict] = {k["test"]: k for k in known}
    problems = []
    seen = set()
    for o in outcomes:
        k = by_test.get(o.test)
        if k is None:
            if o.status in ("failed", "error"):
                first = o.message.strip().splitlines()[0] if o.message.strip() else ""
                problems.append(f"unexpected {o.status}: {o.test}: {first[:300]}")
            continue
        seen.add(o.test)
        if o.status not in ("failed", "error"):
            problems.append(f"listed as failing but {o.status}: {o.test} (drop it from {LIST_FILE})")
        elif not re.search(k.get("match", ""), o.message):
            problems.append(f"fails for another reason than listed ({k.get('match')!r}): {o.test}")
    for test in by_test.keys() - seen:
        problems.append(f"listed but not run: {test}")
    return problems


def _dirty(tree: Path) -> set:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout
    return set(out.splitlines())


def _restore(tree: Path, before: set) -> None:
    """Undo what the tests wrote into the built tree (e.g. MuJoCo's ``MUJOCO_LOG.TXT``, which
    the sdist ships): ``vaml-patch apply`` refuses a tree with uncommitted edits. Only paths
    the run changed are touched; edits that were there before are left as they were."""
    import shutil

    for line in sorted(_dirty(tree) - before):
        path = line[3:]
        if line.startswith("??"):
            target = tree / path
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
            parent = target.parent
            while parent != tree and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        else:
            subprocess.run(["git", "checkout", "--", path], cwd=tree, capture_output=True, check=False)


def run_suite(name: str, python: str, repo: Path, extra: list[str] | None = None) -> Report:
    spec = load_spec(repo, name)
    tree = spec.dest
    if not (tree / "tests").is_dir():
        raise SystemExit(f"{tree}/tests not found: build the tree first (`vaml-patch apply {name}`)")
    listed = load_list(spec.patch_dir)
    ignored = [e["path"] for e in listed["ignore"]]
    problems = [f"ignored module does not exist: {p}" for p in ignored if not (tree / p).is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        ini = Path(tmp) / "pytest.ini"  # upstream ships no pytest config: not ours (../../pyproject.toml) either
        ini.write_text("[pytest]\n")
        cmd = [python, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
        cmd += ["-c", str(ini), f"--rootdir={tree}"]
        cmd += [f"--ignore={p}" for p in ignored] + list(extra or [])
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        print(f"[upstream-tests] {name}: {' '.join(cmd[2:5])} in {tree} ({len(ignored)} module(s) ignored)", flush=True)
        before = _dirty(tree)
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        finally:
            _restore(tree, before)
        if not xml.is_file():
            raise SystemExit(
                f"pytest wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        outcomes = parse_junit(xml)
    return Report(outcomes, ignored, len(listed["known"]), problems + judge(outcomes, listed["known"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the upstream under patches/ (mbrl-lib, mbrl-lib-dev3)")
    p.add_argument("--python", default=sys.executable, help="the interpreter with that tree installed")
    p.add_argument("--repo", type=Path, default=None, help="the repository root (default: found from here)")
    args, extra = p.parse_known_args(argv)
    if args.repo is None:
        from vaml_ext.patching.cli import find_repo_root

        args.repo = find_repo_root(Path(__file__).parent)
    python = Path(args.python)
    if os.sep in args.python:  # a path, relative to where we were called: the suite runs elsewhere
        python = python.absolute()  # not resolve(): a venv's python is a symlink to the base interpreter
        if not python.is_file():
            p.error(f"--python {args.python}: no such interpreter (build it: make install / make install-paper)")
    args.python = str(python)
    r = run_suite(args.name, args.python, args.repo, extra)
    print(
        f"[upstream-tests] {args.name}: {r.count('passed')} passed, "
        f"{r.count('failed') + r.count('error')} failed ({r.known} listed as known), {r.count('skipped')} skipped, "
        f"{len(r.ignored)} module(s) not collectable on this stack (listed)"
    )
    for line in r.problems:
        print(f"[upstream-tests] {line}")
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main())
