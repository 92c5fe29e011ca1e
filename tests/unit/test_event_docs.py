"""docs/events.md is the event catalog as people read it: it may not fall behind the catalog."""

from __future__ import annotations

from pathlib import Path

from shared.contracts.eventdocs import COMMAND, markdown
from shared.contracts.events import CATALOG

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_committed_event_docs_are_what_the_catalog_says():
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        f"docs/events.md is stale: regenerate it with `.venv/bin/{COMMAND}`")


def test_the_event_docs_show_each_type_its_labels_and_what_the_public_sees():
    page = markdown()
    for name, entry in CATALOG.items():
        assert f"## {name}\n" in page and entry.label.es in page and entry.label.en in page
    assert "| `duplicate_of` | text | yes | everyone |" in page
    assert "| `comment` | text | yes | token holder |" in page
    assert "| `notes` | text | yes | staff |" in page
