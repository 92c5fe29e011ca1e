"""An account as the citizen and the clerk read it: the statement and the receipt, as plain dicts
ready for JSON, the pages and the PDFs (amounts as decimal strings, days as ISO dates)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .application import Applied, statement_number
from .documents import verification_code
from .domainmodel import ZERO, Account
from .quote import Quote

TOTALS = {"charge": "charges", "discount": "discounts", "surcharge": "surcharges",
          "payment": "payments", "reversal": "payments"}


def account_header(account: Account) -> dict[str, Any]:
    return {"kind": account.kind, "key": account.key, "holder": account.holder,
            "description": account.description}


def statement(account: Account, owed: Quote, issued_at: datetime, secret: bytes,
              public_url: str, period: str | None = None) -> dict[str, Any]:
    """The statement as of `owed.as_of`: every line, the totals, and what to pay today;
    numbered by `period` (a month's batch), else by the month of `owed.as_of`.

    Its balance is the sum of its lines, and the totals add up to it (a test keeps it so)."""
    totals = dict.fromkeys(("charges", "discounts", "surcharges", "payments"), ZERO)
    lines = []
    for line in account.lines:
        totals[TOTALS[line["kind"]]] += line["amount"]
        lines.append({"date": _day(line["date"]), "kind": line["kind"],
                      "concept": line["concept"], "period": line["period"],
                      "amount": str(line["amount"])})
    balance = sum(totals.values(), ZERO)
    period = period or f"{owed.as_of.year}-{owed.as_of.month:02d}"
    number = statement_number(account.kind, account.key, period)
    code = verification_code(secret, "statement", number, str(balance), owed.as_of.isoformat())
    return {
        "number": number, "issued_at": issued_at.isoformat(), "as_of": owed.as_of.isoformat(),
        "account": account_header(account), "lines": lines,
        "totals": {**{name: str(value) for name, value in totals.items()},
                   "balance": str(balance)},
        "to_pay": {"amount": str(owed.total), "until": owed.until.isoformat(),
                   "discount": str(owed.discount),
                   "surcharges": str(sum((s.amount for s in owed.surcharges), ZERO))},
        "verification": code,
        "verify_url": f"{public_url}/verificar?documento={number}&codigo={code}",
    }


def receipt(applied: Applied, secret: bytes, public_url: str) -> dict[str, Any]:
    """The receipt of one payment: what it paid, what it earned, what is left."""
    account, payment = applied.account, applied.payment
    applied_amount = sum(payment.allocations.values(), ZERO)
    lines = [{"concept": account.charges[charge_id].concept, "amount": str(part)}
             for charge_id, part in payment.allocations.items()]
    lines += [{"concept": line["concept"], "amount": str(line["amount"])}
              for line in account.lines if line.get("with_payment") == payment.reference]
    when = payment.paid_at.isoformat()
    code = verification_code(secret, "receipt", payment.reference, str(payment.amount), when)
    return {
        "reference": payment.reference, "paid_at": when, "channel": payment.channel,
        "amount": str(payment.amount), "applied": str(applied_amount),
        "unapplied": str(payment.amount - applied_amount),
        "balance_after": str(_balance_after(account, payment.reference)),
        "reversed": payment.reversed, "first_time": applied.first_time,
        "account": account_header(account), "lines": lines,
        "clerk": payment.by if payment.channel == "window" else None,
        "verification": code,
        "verify_url": f"{public_url}/verificar?documento={payment.reference}&codigo={code}",
    }


def _balance_after(account: Account, reference: str) -> Decimal:
    """The balance right after this payment's line (later events are not this receipt's)."""
    total = ZERO
    for line in account.lines:
        total += line["amount"]
        if line["kind"] == "payment" and line.get("reference") == reference:
            return total
    return total


def _day(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()
