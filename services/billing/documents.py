"""Billing's printed documents: a payment's receipt and an account's statement as PDF, each with
the verification code a clerk at the window recomputes to tell a real one from a forgery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import CORE_FONTS_CHARWIDTHS

from services.billing.money import fmt, parse

ACCOUNTS = {  # kind → (what the account is, what its key is called)
    "predial": ("Impuesto predial", "Clave catastral"),
    "agua": ("Agua potable", "Contrato"),
    "multas": ("Multa de tránsito", "Boleta"),
}
MOVEMENTS = {
    "charge": "cargo",
    "discount": "descuento",
    "surcharge": "recargo",
    "payment": "pago",
    "reversal": "pago cancelado",
}
CHANNELS = {"online": "En línea", "window": "Ventanilla", "bank": "Banco"}

# Core fonts speak latin-1 only: what else a name may hold is spelled the nearest latin-1 way.
SPELLED = str.maketrans({
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "‘": "'", "’": "'", "‚": ",",
    "“": '"', "”": '"', "„": '"', "…": "...", "•": "·", "€": "EUR", "Œ": "OE", "œ": "oe",
    "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i",
})

LINE = 5.0  # mm, one line of table text
SHADE = (0xF2, 0xF2, 0xF2)  # the fill of a table's header and of the total to pay

# Table text is measured from the glyph widths (1/1000 em) rather than with get_string_width(),
# which copies fpdf's whole graphics state per call: a third of a long statement's time.
BODY = CORE_FONTS_CHARWIDTHS["helvetica"]

Named = TypeVar("Named")


def verification_code(secret: bytes, kind: str, ident: str, amount: str, when: str) -> str:
    """A short code printed on a document, HMAC-SHA256 of (kind, ident, amount, when) under
    secret, base32 without padding, 16 chars in groups of four (2LIE-YXFT-52WM-JIQJ). Anyone at the
    window can check a document by recomputing it (billing exposes /verificar).

    The amount is read to the centavo first, so "1275" and "1275.00" give the same code.
    >>> verification_code(b"s3cret", "recibo", "PAY-2026-0001", "1275.00", "2026-01-15")[4]
    '-'
    """
    if not secret:
        raise ValueError("a verification code needs a secret; an empty one proves nothing")
    # JSON, not a separator: no ident can be written so that two documents share one message.
    message = json.dumps([kind, ident, str(parse(amount)), when], separators=(",", ":"))
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    code = base64.b32encode(digest).decode()[:16]
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


def receipt_pdf(receipt: Mapping[str, Any], city: str) -> bytes:
    """The receipt of one payment: what it paid, what was left as credit, and the balance after."""
    when = _moment(receipt["paid_at"])
    pdf = _Sheet(city, "Recibo de pago", receipt["reference"], when)
    _facts(pdf, [
        ("Referencia", receipt["reference"]),
        ("Fecha de pago", _shown(when)),
        ("Canal", _named(CHANNELS, receipt["channel"], "canal")),
        *([("Atendió", receipt["clerk"])] if receipt.get("clerk") else []),
    ])
    _account(pdf, receipt["account"])
    columns = [("Concepto", 145.9, "L"), ("Importe", 40.0, "R")]
    _table(pdf, columns, [(line["concept"], _money(line["amount"])) for line in receipt["lines"]])
    sums = [("Importe pagado", receipt["amount"]), ("Aplicado a la cuenta", receipt["applied"])]
    if parse(receipt["unapplied"]):
        sums.append(("Saldo a favor (pago en exceso)", receipt["unapplied"]))
    sums.append(("Saldo después del pago", receipt["balance_after"]))
    _sums(pdf, sums)
    _verification(pdf, receipt["verification"], receipt["verify_url"])
    return bytes(pdf.output())


def statement_pdf(statement: Mapping[str, Any], city: str) -> bytes:
    """An account's statement: every movement to a day, the totals, and what settles it today."""
    pdf = _Sheet(city, "Estado de cuenta", statement["number"], _moment(statement["issued_at"]))
    _facts(pdf, [
        ("Número", statement["number"]),
        ("Fecha de emisión", _shown(_moment(statement["issued_at"]))),
        ("Movimientos al", _day(statement["as_of"])),
    ])
    _account(pdf, statement["account"])
    columns = [
        ("Fecha", 22.0, "L"), ("Movimiento", 28.0, "L"), ("Concepto", 79.9, "L"),
        ("Periodo", 20.0, "L"), ("Importe", 36.0, "R"),
    ]
    rows = [
        (_day(line["date"]), _named(MOVEMENTS, line["kind"], "movimiento"), line["concept"],
         line.get("period") or "", _money(line["amount"]))
        for line in statement["lines"]
    ]
    _table(pdf, columns, rows)
    totals = statement["totals"]
    _sums(pdf, [
        ("Cargos", totals["charges"]), ("Descuentos", totals["discounts"]),
        ("Recargos", totals["surcharges"]), ("Pagos", totals["payments"]),
        ("Saldo", totals["balance"]),
    ])
    _to_pay(pdf, statement["to_pay"])
    _verification(pdf, statement["verification"], statement["verify_url"])
    return bytes(pdf.output())


class _Sheet(FPDF):
    """A Letter page with the municipality's header and a numbered footer on every page."""

    def __init__(self, city: str, title: str, ident: str, when: datetime) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.city, self.doc_title, self.ident = _text(city), title, _text(ident)
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        # The document's own moment, not the clock: a re-render gives the same bytes.
        self.set_creation_date(when)
        self.set_title(f"{title} {self.ident}")
        self.set_author(f"{self.city} - Tesorería Municipal")
        self.set_creator("Expediente")
        self.set_lang("es-MX")
        self.add_page()

    def header(self) -> None:
        self.set_draw_color(0)
        self.set_font("Helvetica", "B", 14)
        self.cell(110, 7, self.city)
        self.cell(0, 7, self.doc_title.upper(), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "", 9)
        self.cell(110, 5, "Tesorería Municipal")
        self.cell(0, 5, self.ident, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.line(self.l_margin, self.y + 2, self.w - self.r_margin, self.y + 2)
        self.ln(6)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", "", 7)
        self.cell(120, 4, f"{self.city} · {self.doc_title} {self.ident}")
        self.cell(0, 4, f"Página {self.page_no()} de {{nb}}", align="R")


def _facts(pdf: FPDF, facts: Sequence[tuple[str, str]]) -> None:
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(38, LINE, f"{label}:")
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, LINE, _text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # may be long
    pdf.ln(3)


def _account(pdf: FPDF, account: Mapping[str, Any]) -> None:
    what, key = _named(ACCOUNTS, account["kind"], "cuenta")
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, f"Cuenta: {what}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    facts = [(key, account["key"]), ("Titular", account["holder"])]
    if account.get("description"):
        facts.append(("Descripción", account["description"]))
    _facts(pdf, facts)


Column = tuple[str, float, str]  # title, width in mm, alignment


def _table(pdf: FPDF, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Rows under a header that repeats on every page; a long concept wraps, never overflows."""
    _head(pdf, columns)
    if not rows:
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, LINE + 1, "Sin movimientos.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _body_style(pdf)
    for row in rows:
        cells = [
            _wrapped(pdf, _text(text), width)
            for text, (_, width, _) in zip(row, columns, strict=True)
        ]
        height = max(len(lines) for lines in cells) * LINE + 1
        if pdf.will_page_break(height):
            pdf.add_page()
            _head(pdf, columns)
            _body_style(pdf)
        x, y = pdf.l_margin, pdf.y
        for lines, (_, width, align) in zip(cells, columns, strict=True):
            for n, text in enumerate(lines):
                _put(pdf, text, x, y + 0.5 + n * LINE, width, align)
            x += width
        pdf.line(pdf.l_margin, y + height, x, y + height)
        pdf.set_y(y + height)
    pdf.set_draw_color(0)
    pdf.ln(3)


def _body_style(pdf: FPDF) -> None:
    pdf.set_font("Helvetica", "", 9)
    pdf.set_draw_color(0xDD)  # a faint rule between rows


def _put(pdf: FPDF, text: str, x: float, top: float, width: float, align: str) -> None:
    # text() costs a tenth of cell(), and a long statement is hundreds of cells: this is what
    # keeps a batch of statements fast. The baseline sits where cell() would put it.
    if align == "R":
        x += width - pdf.c_margin - _width(pdf, text)
    else:
        x += pdf.c_margin
    pdf.text(x, top + LINE / 2 + 0.3 * pdf.font_size, text)


def _head(pdf: FPDF, columns: Sequence[Column]) -> None:
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(*SHADE)
    for title, width, align in columns:
        pdf.cell(width, LINE + 1, title, align=align, fill=True)
    pdf.ln(LINE + 1)


def _wrapped(pdf: FPDF, text: str, width: float) -> list[str]:
    # Measuring is cheap and almost every cell fits; only the rare long one pays for a dry run.
    if _width(pdf, text) <= width - 2 * pdf.c_margin:
        return [text]
    lines = pdf.multi_cell(width, LINE, text, dry_run=True, output="LINES")
    return lines if isinstance(lines, list) else [text]


def _width(pdf: FPDF, text: str) -> float:
    return sum(BODY[char] for char in text) * pdf.font_size / 1000  # text is latin-1 by _text


def _sums(pdf: FPDF, sums: Sequence[tuple[str, str]]) -> None:
    """Labelled amounts under the table's amount column; the last one, the result, in bold."""
    if pdf.will_page_break(len(sums) * LINE):
        pdf.add_page()  # a total is read with the amounts it adds up: never split them
    for n, (label, amount) in enumerate(sums):
        pdf.set_font("Helvetica", "B" if n == len(sums) - 1 else "", 9)
        pdf.set_x(pdf.w - pdf.r_margin - 110)
        pdf.cell(70, LINE, f"{label}:", align="R")
        pdf.cell(40, LINE, _money(amount), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)


def _to_pay(pdf: FPDF, to_pay: Mapping[str, Any]) -> None:
    discount = abs(parse(to_pay["discount"]))  # a discount is a discount, however it is signed
    if pdf.will_page_break(2 * LINE + 8):
        pdf.add_page()
    pdf.set_fill_color(*SHADE)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(120, 8, "Total a pagar", fill=True)
    total = _money(to_pay["amount"])
    pdf.cell(0, 8, total, align="R", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    until = f"Válido hasta el {_day(to_pay['until'])}."
    pdf.cell(0, LINE, until, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if discount:
        included = f"Incluye descuento por pronto pago de {fmt(discount)}."
        pdf.cell(0, LINE, included, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)


def _verification(pdf: FPDF, code: str, url: str) -> None:
    if pdf.will_page_break(3 * LINE + 4):
        pdf.add_page()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, f"Código de verificación: {_text(code)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, LINE, "Compruebe este documento en cualquier ventanilla o en:",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0x1A, 0x4D, 0x8F)
    pdf.cell(0, LINE, _text(url), link=_text(url), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)


def _text(value: object) -> str:
    """`value` as core fonts can print it: latin-1, on one line, never an exception."""
    text = " ".join(str(value).translate(SPELLED).split())
    if text.isascii() and text.isprintable():
        return text
    return "".join(_letter(char) for char in text)


def _letter(char: str) -> str:
    if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 or unicodedata.category(char) == "Cf":
        return ""  # control and format codes; 0x80-0x9F would print as cp1252 glyphs
    if ord(char) <= 0xFF:
        return char
    # "ő" is "o" + a mark: keep the letter. "王" has no latin-1 spelling at all.
    kept = "".join(part for part in unicodedata.normalize("NFKD", char) if ord(part) <= 0xFF)
    return kept or "?"


def _named(names: Mapping[str, Named], code: str, what: str) -> Named:
    # A document is an official record: a kind we cannot name is a bug, not a blank to print.
    if code not in names:
        raise ValueError(f"a billing document knows no {what} {code!r}")
    return names[code]


def _money(amount: str) -> str:
    return fmt(parse(amount))  # "1850.50" → "$1,850.50 MXN"; a malformed amount raises


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # never the host's zone


def _shown(moment: datetime) -> str:
    return f"{moment:%d/%m/%Y %H:%M} h"


def _day(text: str) -> str:
    return f"{date.fromisoformat(text):%d/%m/%Y}"
