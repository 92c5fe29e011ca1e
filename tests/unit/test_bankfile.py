"""The bank's reconciliation file: a file the bank really sends is read, a file that is not one is
refused whole with what to fix, and each bad payment row is refused alone, with its reason."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest
from marshmallow import ValidationError

from services.billing.bankfile import BankFileError, BankRowSchema, chunks, read, reason

HEADER = "referencia,fecha,concepto,cuenta,importe"
GOOD = {"row": 2, "referencia": "BNK-000001", "fecha": "2026-03-31", "concepto": "agua",
        "cuenta": "AG-004512", "importe": "350.00"}


def bank_file(tmp_path, text: str | bytes, name: str = "pagos.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refusal(**cells) -> dict:
    """The messages of a row like GOOD with `cells` changed (the row must be refused)."""
    with pytest.raises(ValidationError) as refused:
        BankRowSchema().load({**GOOD, **cells})
    return refused.value.messages


# ---- the file -----------------------------------------------------------------------------------

def test_a_banks_file_is_read_row_by_row_with_its_line_numbers(tmp_path):
    path = bank_file(tmp_path, f"{HEADER}\r\nBNK-1,2026-03-31,agua,AG-004512,350.00\r\n"
                               "\r\n"
                               "BNK-2,31/03/2026,predial,\"14-001-0123-045\",1850.50\r\n")
    read_file = read(path)
    assert read_file.filename == "pagos.csv" and read_file.rows_total == 2
    assert read_file.rows == [
        {"row": 2, "referencia": "BNK-1", "fecha": "2026-03-31", "concepto": "agua",
         "cuenta": "AG-004512", "importe": "350.00"},
        {"row": 4, "referencia": "BNK-2", "fecha": "31/03/2026", "concepto": "predial",
         "cuenta": "14-001-0123-045", "importe": "1850.50"}]


@pytest.mark.parametrize("header", [
    "\ufeff" + HEADER,  # Excel's "CSV UTF-8" starts with a BOM
    "Referencia,Fecha,Concepto,Cuenta,Importe",
    " REFERENCIA , fecha,concepto ,cuenta,  importe ",
])
def test_the_header_may_carry_a_bom_capitals_and_spaces(tmp_path, header):
    path = bank_file(tmp_path, f"{header}\nBNK-1,2026-03-31,agua,AG-004512,350.00\n")
    assert read(path).rows[0]["referencia"] == "BNK-1"


@pytest.mark.parametrize("header", [
    "referencia,fecha,concepto,cuenta",  # a column missing
    "referencia,fecha,cuenta,concepto,importe",  # out of order
    "referencia;fecha;concepto;cuenta;importe",  # semicolons, as some spreadsheets save
    "BNK-1,2026-03-31,agua,AG-004512,350.00",  # no header at all
    "",
])
def test_a_file_without_the_header_is_refused_whole_naming_the_columns(tmp_path, header):
    path = bank_file(tmp_path, f"{header}\nBNK-1,2026-03-31,agua,AG-004512,350.00\n")
    with pytest.raises(BankFileError, match=f"header {HEADER}"):
        read(path)


def test_a_file_not_in_utf8_is_refused_with_the_line_of_the_first_bad_byte(tmp_path):
    latin1 = f"{HEADER}\nBNK-1,2026-03-31,multas,M-2026-000123,350.00\nBNK-2,Peñuelas\n"
    path = bank_file(tmp_path, latin1.encode("latin-1"))
    with pytest.raises(BankFileError, match=r"not UTF-8 text \(byte 0xF1 on line 3\)"):
        read(path)


def test_an_empty_or_missing_file_is_refused(tmp_path):
    with pytest.raises(BankFileError, match="header"):
        read(bank_file(tmp_path, b""))
    with pytest.raises(BankFileError, match="cannot read"):
        read(tmp_path / "no-such.csv")


def test_a_file_of_more_than_200000_payments_is_refused(tmp_path):
    row = "BNK-1,2026-03-31,agua,AG-004512,350.00\n"
    assert read(bank_file(tmp_path, HEADER + "\n" + row * 200_000)).rows_total == 200_000
    with pytest.raises(BankFileError, match="more than 200,000 payment rows"):
        read(bank_file(tmp_path, HEADER + "\n" + row * 200_001))


def test_a_row_that_does_not_split_in_five_is_kept_to_be_refused_with_its_line(tmp_path):
    path = bank_file(tmp_path, f"{HEADER}\nBNK-1,2026-03-31,agua,AG-004512,350.00,extra\n"
                               "BNK-2,2026-03-31,agua\n"
                               "BNK-3,\"2026-03-31\"x,agua,AG-004512,350.00\n"
                               ",,,,\n"  # an empty spreadsheet row: skipped
                               "BNK-4,2026-03-31,agua,AG-004512,350.00\n")
    rows = read(path).rows
    assert rows[0] == {"row": 2, "error": f"expected 5 columns ({HEADER}), found 6"}
    assert rows[1] == {"row": 3, "error": f"expected 5 columns ({HEADER}), found 3"}
    assert rows[2] == {"row": 4, "error": "the line is not valid CSV (check its quotes)"}
    assert rows[3]["row"] == 6 and rows[3]["referencia"] == "BNK-4"
    with pytest.raises(ValidationError) as refused:
        BankRowSchema().load(rows[0])
    assert reason(refused.value) == f"expected 5 columns ({HEADER}), found 6"


def test_a_file_is_known_by_its_bytes(tmp_path):
    text = f"{HEADER}\nBNK-1,2026-03-31,agua,AG-004512,350.00\n"
    first = read(bank_file(tmp_path, text, "a.csv"))
    same = read(bank_file(tmp_path, text, "renamed.csv"))
    other = read(bank_file(tmp_path, text.replace("350.00", "350.01"), "b.csv"))
    assert first.file_id == same.file_id == hashlib.sha256(text.encode()).hexdigest()
    assert other.file_id != first.file_id


def test_chunks_go_from_where_the_import_stopped_to_the_end():
    rows = [{"row": n} for n in range(2, 12)]  # ten rows
    assert [(first, [r["row"] for r in part]) for first, part in chunks(rows, 0, 4)] == [
        (0, [2, 3, 4, 5]), (4, [6, 7, 8, 9]), (8, [10, 11])]
    assert [(first, len(part)) for first, part in chunks(rows, 7, 4)] == [(7, 3)]
    assert list(chunks(rows, 10, 4)) == []
    with pytest.raises(ValueError):
        list(chunks(rows, 0, 0))


# ---- one row ------------------------------------------------------------------------------------

def test_a_good_row_loads_as_a_payment():
    assert BankRowSchema().load(GOOD) == {
        "row": 2, "reference": "BNK-000001", "paid_on": date(2026, 3, 31), "kind": "agua",
        "key": "AG-004512", "amount": Decimal("350.00")}


def test_a_day_written_dd_mm_yyyy_is_the_same_day_and_cells_are_trimmed():
    loaded = BankRowSchema().load({**GOOD, "fecha": "05/03/2026", "concepto": " Predial ",
                                   "cuenta": "14-001-0123-045 ", "importe": "1850.5"})
    assert loaded["paid_on"] == date(2026, 3, 5) and loaded["kind"] == "predial"
    assert loaded["key"] == "14-001-0123-045" and loaded["amount"] == Decimal("1850.50")


@pytest.mark.parametrize("fecha, message", [
    ("2026-02-30", "2026-02-30 is not a day of the calendar"),
    ("31/04/2026", "31/04/2026 is not a day of the calendar"),
    ("2026/03/31", "write the date as YYYY-MM-DD or DD/MM/YYYY, not '2026/03/31'"),
    ("03-31-2026", "write the date as YYYY-MM-DD or DD/MM/YYYY, not '03-31-2026'"),
    ("31/03/1926", "31/03/1926 is not a year between 2000 and 2100"),
])
def test_a_day_that_is_not_one_is_refused(fecha, message):
    assert refusal(fecha=fecha) == {"fecha": [message]}


@pytest.mark.parametrize("importe, says", [
    ("1,850.50", "plain digits"),
    ("$100", "plain digits"),
    ("0", "more than 0.00"),
    ("0.00", "more than 0.00"),
    ("-5", "more than 0.00"),
    ("1.234", "at most two decimals"),
    ("1e3", "at most two decimals"),
    ("١٠٠", "digits 0-9"),  # Arabic-Indic digits: Decimal would read 100
    ("10000000.01", "at most 10,000,000.00"),
    ("", "may not be blank"),
])
def test_an_amount_not_plainly_written_or_out_of_range_is_refused(importe, says):
    assert says in refusal(importe=importe)["importe"][0]


def test_the_largest_payment_is_ten_million():
    assert BankRowSchema().load({**GOOD, "importe": "10000000"})["amount"] == Decimal(
        "10000000.00")


def test_an_unknown_concept_is_refused():
    assert refusal(concepto="gas") == {
        "concepto": ["the concept is one of predial, agua, multas, not 'gas'"]}


@pytest.mark.parametrize("concepto, cuenta", [
    ("agua", "14-001-0123-045"), ("predial", "AG-004512"), ("multas", "M-26-0001"),
    ("agua", "AG-123"), ("predial", "14-001-01234-045"),
])
def test_an_account_not_written_as_its_concepts_bills_print_it_is_refused(concepto, cuenta):
    message = refusal(concepto=concepto, cuenta=cuenta)["cuenta"][0]
    assert message.startswith(f"{cuenta!r} is not a {concepto} account")


def test_every_problem_of_a_row_is_told_at_once():
    messages = refusal(fecha="2026-02-30", cuenta="AG-1")
    assert set(messages) == {"fecha", "cuenta"}


@pytest.mark.parametrize("referencia, says", [
    ("BNK\x00001", "control character (U+0000 at position 3)"),
    ("BNK\t001", "single line"),
    ("A" * 65, "at most 64 characters"),
    ("BNK 001", "1 to 64 letters, digits"),
    ("-BNK", "starting with a letter or digit"),
    ("", "may not be blank"),
])
def test_a_reference_the_ledger_could_not_keep_is_refused(referencia, says):
    assert says in refusal(referencia=referencia)["referencia"][0]


def test_a_reference_of_64_characters_is_taken():
    assert BankRowSchema().load({**GOOD, "referencia": "A" * 64})["reference"] == "A" * 64


def test_control_characters_are_refused_in_any_cell():
    assert "control character" in refusal(cuenta="AG-004512\x07")["cuenta"][0]
    assert "control character" in refusal(concepto="agua\x1b")["concepto"][0]


def test_a_row_number_is_a_line_after_the_header():
    assert "row" in refusal(row=1)
    assert "row" in refusal(row="2")


def test_a_rejected_rows_reason_is_one_line_naming_each_column():
    with pytest.raises(ValidationError) as refused:
        BankRowSchema().load({**GOOD, "fecha": "31/04/2026", "importe": "$5"})
    assert reason(refused.value) == ("fecha: 31/04/2026 is not a day of the calendar; importe: "
                                     "write an amount as plain digits, e.g. 1850.50, not '$5'")
