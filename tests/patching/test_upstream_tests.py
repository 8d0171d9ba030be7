"""vaml_ext.patching.upstream_tests: the known-failures contract, and the shipped lists."""

import textwrap
from pathlib import Path

import pytest

from vaml_ext.patching.upstream_tests import Outcome, judge, load_list, parse_junit

REPO = Path(__file__).resolve().parents[2]
KNOWN = [{"test": "tests/a.py::test_x", "match": "numpy refuses", "reason": "in the test"}]


def test_everything_passing_or_failing_as_listed_is_fine():
    out = [Outcome("tests/a.py::test_x", "failed", "TypeError: numpy refuses"), Outcome("tests/b.py::t", "passed")]
    assert judge(out, KNOWN) == []


@pytest.mark.parametrize(
    "outcomes,expect",
    [
        (
            [Outcome("tests/a.py::test_x", "failed", "numpy refuses"), Outcome("tests/b.py::t", "failed", "boom")],
            "unexpected failed",
        ),
        ([Outcome("tests/a.py::test_x", "passed")], "listed as failing but passed"),
        ([Outcome("tests/a.py::test_x", "error", "ImportError: something else")], "another reason"),
        ([Outcome("tests/b.py::t", "passed")], "listed but not run"),
    ],
)
def test_each_breach_is_reported(outcomes, expect):
    problems = judge(outcomes, KNOWN)
    assert len(problems) == 1 and expect in problems[0]


def test_junit_parsing(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        textwrap.dedent(
            """\
            <testsuites><testsuite>
              <testcase classname="tests.a" name="test_x" file="tests/a.py"><failure message="TypeError: x">tb</failure></testcase>
              <testcase classname="tests.b" name="t" file="tests/b.py"/>
              <testcase classname="tests.b" name="s" file="tests/b.py"><skipped message="no"/></testcase>
            </testsuite></testsuites>"""
        )
    )
    got = [(o.test, o.status) for o in parse_junit(xml)]
    assert got == [("tests/a.py::test_x", "failed"), ("tests/b.py::t", "passed"), ("tests/b.py::s", "skipped")]


@pytest.mark.parametrize("name", ["mbrl-lib", "mbrl-lib-dev3"])
def test_shipped_lists_are_short_and_every_entry_has_a_reason(name):
    listed = load_list(REPO / "patches" / name)
    entries = listed["known"] + listed["ignore"]
    assert 0 < len(entries) <= 8
    assert all(len(e["reason"]) > 30 for e in entries)
    assert all(e.get("match") for e in listed["known"])


def test_an_entry_without_a_reason_is_refused(tmp_path):
    (tmp_path / "upstream-tests.toml").write_text('[[known]]\ntest = "tests/a.py::t"\nmatch = "x"\n')
    with pytest.raises(SystemExit, match="needs a reason"):
        load_list(tmp_path)


def test_what_the_tests_wrote_into_the_tree_is_undone_and_nothing_else(tmp_path):
    """`vaml-patch apply` refuses a tree with uncommitted edits: a suite run must leave none
    (upstream's MuJoCo tests rewrite the sdist's MUJOCO_LOG.TXT), but keep a developer's own."""
    import subprocess

    from vaml_ext.patching.upstream_tests import _dirty, _restore

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "MUJOCO_LOG.TXT").write_text("shipped\n")
    (tmp_path / "mine.py").write_text("a = 1\n")
    git("add", ".")
    git("commit", "-qm", "tree")
    (tmp_path / "mine.py").write_text("a = 2  # work in progress\n")
    before = _dirty(tmp_path)
    (tmp_path / "MUJOCO_LOG.TXT").write_text("written by a test\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "video.mp4").write_bytes(b"\0")
    _restore(tmp_path, before)
    assert (tmp_path / "MUJOCO_LOG.TXT").read_text() == "shipped\n" and not (tmp_path / "out").exists()
    assert (tmp_path / "mine.py").read_text() == "a = 2  # work in progress\n"


def test_an_entry_for_a_missing_program_applies_only_where_it_is_missing(tmp_path, monkeypatch):
    import shutil

    (tmp_path / "upstream-tests.toml").write_text(
        '[[known]]\ntest = "tests/a.py::t"\nmatch = "ffmpeg"\nunless_program = "ffmpeg"\nreason = "needs the ffmpeg binary"\n'
    )
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert len(load_list(tmp_path)["known"]) == 1
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert load_list(tmp_path)["known"] == []  # installed: the test must pass
