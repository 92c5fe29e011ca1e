"""Billing's receipts and statements as a citizen holds them: every figure readable back out of the
PDF, names from anywhere printed without a crash, a long water history over several pages, the
same bytes on every re-print, and a verification code the window can recompute."""

from __future__ import annotations

import io
import re
from copy import deepcopy
from datetime import datetime, timedelta, timezone

import pytest
from pypdf import PdfReader

from services.billing.documents import receipt_pdf, statement_pdf, verification_code
from services.billing.money import fmt, parse

CITY = "San Pedro Tlaquepaque"
SECRET = b"tesoreria-2026"
CODE = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")  # base32, grouped by four

ACCOUNT = {"kind": "predial", "key": "14-001-0123-045", "holder": "María López",
           "description": "Av. Juárez 12, Centro"}
RECEIPT = {
    "reference": "PAY-2026-0001", "paid_at": "2026-01-15T10:30:00-06:00", "channel": "window",
    "amount": "1300.00", "applied": "1275.00", "unapplied": "25.00", "balance_after": "-25.00",
    "account": ACCOUNT,
    "lines": [{"concept": "Predial 2026", "amount": "1500.00"},
              {"concept": "Descuento pronto pago 15 %", "amount": "-225.00"}],
    "clerk": "ventanilla-3 (Ana Ruiz)",
    "verification": "ABCD-EFGH-IJKL-MNOP",
    "verify_url": "http://localhost:8004/verificar/ABCD-EFGH-IJKL-MNOP",
}
STATEMENT = {
    "number": "EC-2026-12-14-001-0123-045", "issued_at": "2026-12-01T08:00:00-06:00",
    "as_of": "2026-12-01", "account": ACCOUNT,
    "lines": [
        {"date": "2026-01-01", "kind": "charge", "concept": "Predial 2026", "period": "2026",
         "amount": "1500.00"},
        {"date": "2026-01-15", "kind": "discount", "concept": "Descuento pronto pago 15 %",
         "period": "2026", "amount": "-225.00"},
        {"date": "2026-01-15", "kind": "payment", "concept": "Pago PAY-2026-0001", "period": "",
         "amount": "-1275.00"},
        {"date": "2026-02-01", "kind": "reversal", "concept": "Cancelación PAY-2026-0001",
         "period": "", "amount": "1275.00"},
        {"date": "2026-03-01", "kind": "surcharge", "concept": "Recargo marzo 2026",
         "period": "2026-03", "amount": "22.50"},
    ],
    "totals": {"charges": "1500.00", "discounts": "-225.00", "surcharges": "22.50",
               "payments": "0.00", "balance": "1297.50"},
    "to_pay": {"amount": "1297.50", "until": "2026-12-31", "discount": "0.00"},
    "verification": "QRST-UVWX-YZ23-4567",
    "verify_url": "http://localhost:8004/verificar/QRST-UVWX-YZ23-4567",
}


def pages(document: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(document)).pages]


def text(document: bytes) -> str:
    return "\n".join(pages(document))


def money(amount: str) -> str:
    return fmt(parse(amount))  # as the citizen reads it: "-225.00" is "-$225.00 MXN"


def water_history(months: int) -> dict:
    """A water contract billed monthly since 2020, never paid: one charge line per month."""
    statement = deepcopy(STATEMENT)
    statement["account"] = {"kind": "agua", "key": "AG-000123", "holder": "Juan Pérez",
                            "description": "Calle Morelos 5"}
    statement["lines"] = [
        {"date": f"{2020 + m // 12}-{m % 12 + 1:02d}-01", "kind": "charge",
         "concept": f"Agua {2020 + m // 12}-{m % 12 + 1:02d}", "period": f"{m % 12 + 1:02d}",
         "amount": f"{180 + m}.25"}
        for m in range(months)
    ]
    return statement


# ---- the receipt -------------------------------------------------------------------------------

def test_a_receipt_shows_what_was_paid_for_which_account_and_how_to_check_it():
    shown = text(receipt_pdf(RECEIPT, CITY))
    for expected in [CITY, "PAY-2026-0001", "15/01/2026 10:30", "Ventanilla", "Ana Ruiz",
                     "Impuesto predial", "Clave catastral", "14-001-0123-045", "María López",
                     "Av. Juárez 12, Centro", "ABCD-EFGH-IJKL-MNOP", RECEIPT["verify_url"]]:
        assert expected in shown, expected
    for line in RECEIPT["lines"]:
        assert line["concept"] in shown and money(line["amount"]) in shown, line
    assert "$1,300.00 MXN" in shown and "$1,275.00 MXN" in shown  # paid, applied
    assert "Saldo a favor" in shown and "$25.00 MXN" in shown and "-$25.00 MXN" in shown


def test_a_receipt_without_overpayment_or_clerk_does_not_mention_them():
    online = {**RECEIPT, "channel": "online", "clerk": None, "amount": "1275.00",
              "unapplied": "0.00", "balance_after": "0.00"}
    shown = text(receipt_pdf(online, CITY))
    assert "En línea" in shown and "Atendió" not in shown and "Saldo a favor" not in shown
    assert "$0.00 MXN" in shown  # the balance after


# ---- the statement -----------------------------------------------------------------------------

def test_a_statement_shows_every_movement_the_totals_and_what_settles_it():
    shown = text(statement_pdf(STATEMENT, CITY))
    for expected in ["EC-2026-12-14-001-0123-045", "14-001-0123-045", "María López",
                     "01/12/2026", "QRST-UVWX-YZ23-4567", STATEMENT["verify_url"]]:
        assert expected in shown, expected
    for line in STATEMENT["lines"]:
        assert line["concept"] in shown and money(line["amount"]) in shown, line
    for label in ["cargo", "descuento", "pago", "pago cancelado", "recargo"]:
        assert label in shown
    for label, amount in [("Cargos", "1500.00"), ("Descuentos", "-225.00"),
                          ("Recargos", "22.50"), ("Pagos", "0.00"), ("Saldo", "1297.50")]:
        assert f"{label}:" in shown and money(amount) in shown, label
    assert "Total a pagar" in shown and "Válido hasta el 31/12/2026" in shown
    assert "descuento por pronto pago" not in shown  # none is included today


def test_the_amount_to_pay_names_the_early_discount_it_includes():
    early = {**STATEMENT, "to_pay": {"amount": "1275.00", "until": "2026-01-31",
                                     "discount": "225.00"}}
    shown = text(statement_pdf(early, CITY))
    assert "$1,275.00 MXN" in shown and "Válido hasta el 31/01/2026" in shown
    assert "Incluye descuento por pronto pago de $225.00 MXN" in shown


@pytest.mark.parametrize("kind, label, key", [
    ("predial", "Impuesto predial", "Clave catastral"),
    ("agua", "Agua potable", "Contrato"),
    ("multas", "Multa de tránsito", "Boleta"),
])
def test_each_kind_of_account_is_named_as_the_treasury_names_it(kind, label, key):
    statement = {**STATEMENT, "account": {**ACCOUNT, "kind": kind}}
    shown = text(statement_pdf(statement, CITY))
    assert label in shown and f"{key}:" in shown


def test_an_account_or_movement_billing_cannot_name_is_refused_rather_than_printed_blank():
    with pytest.raises(ValueError, match="cuenta 'catastro'"):
        statement_pdf({**STATEMENT, "account": {**ACCOUNT, "kind": "catastro"}}, CITY)
    odd = deepcopy(STATEMENT)
    odd["lines"][0]["kind"] = "gift"
    with pytest.raises(ValueError, match="movimiento 'gift'"):
        statement_pdf(odd, CITY)


def test_five_years_of_monthly_water_charges_run_over_several_pages_and_lose_none():
    statement = water_history(80)
    document = statement_pdf(statement, CITY)
    printed = pages(document)
    assert len(printed) > 1
    assert all("Concepto" in page and "Importe" in page for page in printed)  # header repeats
    assert f"Página 1 de {len(printed)}" in printed[0]
    shown = "\n".join(printed)
    for line in statement["lines"]:
        assert line["concept"] in shown and money(line["amount"]) in shown, line
    assert "Total a pagar" in shown and "QRST-UVWX-YZ23-4567" in printed[-1]


def test_a_concept_too_long_for_its_column_wraps_and_stays_whole():
    concept = ("Convenio de pago en parcialidades firmado en ventanilla por el titular de la "
               "cuenta, parcialidad 3 de 12")
    statement = deepcopy(STATEMENT)
    statement["lines"][0]["concept"] = concept
    shown = " ".join(text(statement_pdf(statement, CITY)).split())
    assert concept in shown


# ---- names from anywhere -----------------------------------------------------------------------

def test_a_holder_named_beyond_latin_1_is_printed_as_near_as_the_font_allows():
    account = {**ACCOUNT, "holder": "Zoë 王 Łukasz — “Nené” 🙂",
               "description": "Ⅳ\x00 Calle\u200b 5"}
    receipt = {**RECEIPT, "account": account,
               "lines": [{"concept": "Multa – semáforo\nrojo", "amount": "500.00"}]}
    shown = text(receipt_pdf(receipt, "Ciudad Juárez ✓"))
    assert "Zoë ? Lukasz - \"Nené\" ?" in shown
    assert "Multa - semáforo rojo" in shown and "IV Calle 5" in shown
    assert "Ciudad Juárez ?" in shown
    assert "Zoë" in text(statement_pdf({**STATEMENT, "account": account}, CITY))


# ---- the same paper every time -----------------------------------------------------------------

def test_printing_a_document_twice_gives_the_same_bytes():
    assert receipt_pdf(RECEIPT, CITY) == receipt_pdf(deepcopy(RECEIPT), CITY)
    assert statement_pdf(water_history(60), CITY) == statement_pdf(water_history(60), CITY)


def test_a_document_is_dated_by_its_own_moment_not_the_clock():
    reader = PdfReader(io.BytesIO(receipt_pdf(RECEIPT, CITY)))
    paid_at = datetime(2026, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=-6)))
    assert reader.metadata is not None and reader.metadata.creation_date == paid_at
    later = {**RECEIPT, "paid_at": "2026-01-15T10:31:00-06:00"}
    assert receipt_pdf(later, CITY) != receipt_pdf(RECEIPT, CITY)


# ---- the verification code ---------------------------------------------------------------------

def test_a_verification_code_is_four_groups_of_four_and_the_same_every_time():
    code = verification_code(SECRET, "recibo", "PAY-2026-0001", "1275.00",
                             "2026-01-15T10:30:00-06:00")
    assert len(code) == 19 and CODE.fullmatch(code)
    assert code == verification_code(SECRET, "recibo", "PAY-2026-0001", "1275.00",
                                     "2026-01-15T10:30:00-06:00")
    # Pinned: /verificar recomputes codes printed on paper years ago; the recipe must not drift.
    assert code == "C4UC-4NG2-BQWK-TNKX"


def test_a_forged_amount_or_another_secret_gives_another_code():
    args = ("recibo", "PAY-2026-0001", "1275.00", "2026-01-15T10:30:00-06:00")
    code = verification_code(SECRET, *args)
    assert verification_code(SECRET, "recibo", "PAY-2026-0001", "1725.00", args[3]) != code
    assert verification_code(b"otra-tesoreria", *args) != code
    assert verification_code(SECRET, "estado", *args[1:]) != code
    assert verification_code(SECRET, "recibo", "PAY-2026-0001", "1275", args[3]) == code


def test_a_verification_code_needs_a_secret_and_a_real_amount():
    with pytest.raises(ValueError, match="secret"):
        verification_code(b"", "recibo", "PAY-2026-0001", "1275.00", "2026-01-15")
    with pytest.raises(ValueError):
        verification_code(SECRET, "recibo", "PAY-2026-0001", "1,275.00", "2026-01-15")
