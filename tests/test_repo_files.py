"""The files a user of the repository relies on: licences and the citation."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_licences_cover_the_code_and_the_port():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    port = (REPO / "third_party" / "slbo" / "LICENSE.md").read_text()
    assert "CC BY-NC 4.0" in port and "facebookresearch/slbo" in port


def test_citation_cites_the_paper():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Modhe", "Kamath", "Batra", "Kalyan"]
    assert "2106.14080" in paper["url"]
