"""The front door's links resolve: every relative link of the README and the docs it points
to names an existing file, and every #anchor an existing heading of its target."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "tests/README.md",
    "patches/README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(md: Path) -> set:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


def _links(md: Path):
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def test_the_readme_is_a_short_front_door():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("doc", DOCS)
def test_links_resolve(doc):
    md = REPO / doc
    broken = []
    for target in _links(md):
        path, _, anchor = target.partition("#")
        dest = md if not path else (md.parent / path)
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{doc}: " + "; ".join(broken)
