"""The bank's reconciliation file: read it, check each payment row, cut it into chunks to send.

The format, as the bank is asked to send it:

- UTF-8 text (a leading BOM is tolerated), comma-separated, one payment per line (`\\n`, `\\r\\n`
  or `\\r`); a field may be quoted to hold a comma, never a line break. Blank lines, and rows
  whose every cell is empty (as spreadsheets export), are skipped.
- Line 1 is the header, exactly `referencia,fecha,concepto,cuenta,importe` (any case, spaces
  around a name ignored). Any other header refuses the whole file.
- `referencia`: the bank's payment reference, 1-64 letters, digits, `.`, `_` or `-`, starting
  with a letter or digit. A payment is applied once per reference: a file imported twice pays
  nothing twice.
- `fecha`: the day paid, `2026-03-31` or `31/03/2026`.
- `concepto`: `predial`, `agua` or `multas` (any case).
- `cuenta`: the account as its bill prints it: predial `14-001-0123-045`, agua `AG-004512`,
  multas `M-2026-000123`.
- `importe`: pesos in plain digits with at most two decimals (`1850.50`), more than 0 and at
  most 10,000,000; no thousands separator, no `$`.
- At most 200,000 payment rows (and 64 MiB) per file.

`read` refuses an unusable file (BankFileError); a row it cannot split into five cells is kept
with an "error" so that it is rejected with its line number like any other bad row. The service
checks each row with BankRowSchema.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from shared.contracts.fields import FIRST_YEAR, LAST_YEAR, Line

from .domainmodel import KEY, KINDS, REFERENCE
from .money import parse

COLUMNS = ("referencia", "fecha", "concepto", "cuenta", "importe")
HEADER = ",".join(COLUMNS)
MAX_ROWS = 200_000
MAX_BYTES = 64 * 2**20  # 200,000 rows of ~80 bytes is 16 MB: more is not a bank file
MAX_AMOUNT = Decimal("10000000.00")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
LOCAL_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
KEY_FORMS = {
    "predial": "a clave catastral is NN-NNN-NNN(N)-NNN, e.g. 14-001-0123-045",
    "agua": "a contrato is AG- and 4 to 8 digits, e.g. AG-004512",
    "multas": "a boleta is M-, the year, - and 4 to 8 digits, e.g. M-2026-000123",
}


class BankFileError(ValueError):
    """The file cannot be imported at all (the message says why and what to fix)."""


@dataclass(frozen=True)
class BankFile:
    """A read file: its identity (sha256 of its bytes), its name, and its rows as written."""

    file_id: str
    filename: str
    rows: list[dict[str, Any]]

    @property
    def rows_total(self) -> int:
        return len(self.rows)


def read(path: str | Path) -> BankFile:
    """The rows of the file at `path`: {"row": line number, "referencia": ..., ...} each."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise BankFileError(f"{path.name} is larger than {MAX_BYTES // 2**20} MiB; "
                                f"split it into files of at most {MAX_ROWS:,} rows")
        data = path.read_bytes()
    except OSError as error:
        raise BankFileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        at = data[:error.start].count(b"\n") + 1
        raise BankFileError(f"{path.name} is not UTF-8 text (byte 0x{data[error.start]:02X} "
                            f"on line {at}); save it as UTF-8 and import it again") from None
    lines = LINE_BREAK.split(text)
    _check_header(lines[0], path.name)
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines[1:], 2):
        row = _row(number, line)
        if row is None:
            continue
        if len(rows) == MAX_ROWS:
            raise BankFileError(f"{path.name} has more than {MAX_ROWS:,} payment rows; split it "
                                "into smaller files")
        rows.append(row)
    return BankFile(hashlib.sha256(data).hexdigest(), path.name, rows)


def _check_header(line: str, name: str) -> None:
    cells = _cells(line)
    if cells is None or [cell.strip().lower() for cell in cells] != list(COLUMNS):
        found = line[:120] or "an empty line"
        raise BankFileError(f"{name} does not start with the header {HEADER} (found {found!r}); "
                            "the first line must name these five columns in this order")


def _row(number: int, line: str) -> dict[str, Any] | None:
    """The row of line `number`, None for a blank one, or {"row", "error"} if it does not split
    into the five columns."""
    cells = _cells(line)
    if cells is None:
        return {"row": number, "error": "the line is not valid CSV (check its quotes)"}
    if not any(cell.strip() for cell in cells):
        return None
    if len(cells) != len(COLUMNS):
        return {"row": number, "error": f"expected {len(COLUMNS)} columns ({HEADER}), "
                                        f"found {len(cells)}"}
    return {"row": number, **dict(zip(COLUMNS, cells, strict=True))}


def _cells(line: str) -> list[str] | None:
    # One reader per line: a stray quote spoils its own line, never the lines after it.
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None


def chunks(rows: Sequence[dict[str, Any]], start_row_index: int,
           size: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(index of the chunk's first row, up to `size` rows), from `start_row_index` to the end."""
    if size < 1 or start_row_index < 0:
        raise ValueError(f"a chunk has at least one row and starts at 0 or later, "
                         f"not {size} rows from {start_row_index}")
    for first in range(start_row_index, len(rows), size):
        yield first, list(rows[first:first + size])


# ---- one row ------------------------------------------------------------------------------------


class Cell(Line):
    """One cell: a single line, trimmed, not blank, then `convert`ed (a ValueError says why)."""

    def __init__(self, column: str, max_length: int, convert: Callable[[str], Any],
                 **kwargs: Any) -> None:
        super().__init__(max_length, strip=True, min_length=1, required=True, data_key=column,
                         **kwargs)
        self.convert = convert

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self.convert(text)
        except ValueError as error:
            raise ValidationError(str(error)) from None


def _reference(text: str) -> str:
    if not REFERENCE.fullmatch(text):
        raise ValueError(f"a payment reference is 1 to 64 letters, digits, '.', '_' or '-', "
                         f"starting with a letter or digit; not {text!r}")
    return text


def _paid_on(text: str) -> date:
    iso, local = ISO_DATE.fullmatch(text), LOCAL_DATE.fullmatch(text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
    elif local:
        day, month, year = (int(part) for part in local.groups())
    else:
        raise ValueError(f"write the date as YYYY-MM-DD or DD/MM/YYYY, not {text!r}")
    try:
        paid_on = date(year, month, day)
    except ValueError:
        raise ValueError(f"{text} is not a day of the calendar") from None
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"{text} is not a year between {FIRST_YEAR} and {LAST_YEAR}")
    return paid_on


def _kind(text: str) -> str:
    if text.lower() not in KINDS:
        raise ValueError(f"the concept is one of {', '.join(KINDS)}, not {text!r}")
    return text.lower()


def _amount(text: str) -> Decimal:
    if not text.isascii():  # money.parse's \d would read other scripts' digits
        raise ValueError(f"write the amount with the digits 0-9, not {text!r}")
    amount = parse(text)
    if amount <= 0:
        raise ValueError(f"a payment is more than 0.00, not {text!r}")
    if amount > MAX_AMOUNT:
        raise ValueError(f"a payment is at most {MAX_AMOUNT:,}, not {text!r}")
    return amount


class BankRowSchema(Schema):
    """One row of `read` checked: {"row": 2, "referencia": "BNK-0001", "fecha": "31/03/2026",
    "concepto": "agua", "cuenta": "AG-004512", "importe": "350.00"} loads to {"row": 2,
    "reference": "BNK-0001", "paid_on": date(2026, 3, 31), "kind": "agua", "key": "AG-004512",
    "amount": Decimal("350.00")}; a bad row raises ValidationError keyed by column."""

    row = fields.Integer(required=True, strict=True, validate=validate.Range(min=2))
    reference = Cell("referencia", 64, _reference)
    paid_on = Cell("fecha", 10, _paid_on)
    kind = Cell("concepto", 16, _kind)
    key = Cell("cuenta", 32, str)
    amount = Cell("importe", 24, _amount)

    @pre_load
    def readable(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and "error" in data:  # read() could not split the line
            raise ValidationError(str(data["error"]))
        return data

    @validates_schema(skip_on_field_errors=False)  # every problem of the row at once
    def key_of_its_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind, key = data.get("kind"), data.get("key")
        if kind in KEY and key is not None and not KEY[kind].fullmatch(key):
            raise ValidationError(f"{key!r} is not a {kind} account: {KEY_FORMS[kind]}",
                                  field_name="cuenta")


def reason(error: ValidationError) -> str:
    """A rejected row's messages on one line: "fecha: ...; importe: ..."."""
    messages = error.messages
    if not isinstance(messages, dict):
        return "; ".join(str(message) for message in _flat(messages))
    return "; ".join(message if name == "_schema" else f"{name}: {message}"
                     for name, found in messages.items() for message in _flat(found))


def _flat(found: Any) -> list[str]:
    if isinstance(found, dict):
        return [f"{name}: {message}" for name, inner in found.items() for message in _flat(inner)]
    if isinstance(found, list):
        return [message for item in found for message in _flat(item)]
    return [str(found)]
