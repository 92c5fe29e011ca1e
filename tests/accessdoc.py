"""docs/access.md read as data: its tables of doors against principals, each cell what that
principal may do there. The access tests take their cases from here, so the page cannot drift
from what the services do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "access.md"
ALLOWED = ("✓", "dept", "own")
REFUSED = ("401", "403")
VIEWS = ("public", "private", "crew", "staff")
DOOR_HEADERS = ("command", "door")


@dataclass(frozen=True)
class Cell:
    """`✓`, `dept`, `own`, `401` or `403`, and for a read what it shows (`✓ staff`)."""

    access: str
    view: str | None = None

    @property
    def allowed(self) -> bool:
        return self.access in ALLOWED

    def __str__(self) -> str:
        return f"{self.access} {self.view}" if self.view else self.access


@dataclass(frozen=True)
class Row:
    section: str        # the heading above the table, e.g. "Tracking: staff commands"
    label: str          # the first cell as written, e.g. "`add_comment` internal"
    cells: dict[str, Cell]

    @property
    def doors(self) -> list[str]:
        """The entrypoints the row is about: its backticked names."""
        return re.findall(r"`([^`]+)`", self.label)


def cell(text: str) -> Cell:
    words = text.split()
    if not 1 <= len(words) <= 2 or words[0] not in (*ALLOWED, *REFUSED) or (
            len(words) == 2 and (words[1] not in VIEWS or words[0] in REFUSED)):
        raise ValueError(f"docs/access.md: {text!r} is not a cell (see 'What a cell says')")
    return Cell(words[0], words[1] if len(words) == 2 else None)


def _cells(line: str) -> list[str]:
    return [part.strip() for part in line.strip().strip("|").split("|")]


def rows(text: str | None = None) -> list[Row]:
    """Every row of every door table (first header `command` or `door`), in page order."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    found: list[Row] = []
    section, header = "", None
    for line in text.splitlines():
        if line.startswith("## "):
            section, header = line[3:].strip(), None
        elif not line.startswith("|"):
            header = None
        elif header is None:
            header = _cells(line)
        elif set(line) <= set("|-: ") or header[0] not in DOOR_HEADERS:
            continue
        else:
            values = _cells(line)
            if len(values) != len(header):
                raise ValueError(f"docs/access.md: {values[0]} has {len(values)} cells, its "
                                 f"table {len(header)}")
            found.append(Row(section, values[0],
                             {who: cell(value) for who, value in zip(header[1:], values[1:],
                                                                      strict=True)}))
    return found


def principals(text: str | None = None) -> list[str]:
    """The columns the page introduces under "Who knocks"."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    block = text.split("## Who knocks", 1)[1].split("\n## ", 1)[0]
    return [match for match in re.findall(r"^\| `([^`]+)` \|", block, re.MULTILINE)]


def sections(text: str | None = None) -> dict[str, str]:
    """Each `## ` section's text by its heading."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}
