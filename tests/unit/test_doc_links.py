"""The README and docs/ link only inside the repository, and every link they make resolves."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_links_stay_inside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{document.name} points at the design notes beside the repo"
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document.name}: {target} leaves the repository"
        assert path.exists(), f"{document.name}: {target} does not exist"


def test_service_docstrings_stay_inside_the_repository() -> None:
    for package in sorted((ROOT / "services").glob("*/__init__.py")):
        assert "../shared" not in package.read_text(encoding="utf-8"), package
