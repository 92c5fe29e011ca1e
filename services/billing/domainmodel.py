"""Accounts and payments: billing's streams, their rules and their events (no I/O).

An `Account` is one stream: a predial account by cadastral key, a water contract by number, a
traffic fine by ticket. Its events are the ledger: charges assessed, discounts and surcharges
applied, payments received and reversed, statements issued. Its balance is the sum of its
events, and nothing else: a statement shows exactly those lines.

A `PaymentReference` is a stream of one event per payment reference, saved in the same
transaction as the payment: a second payment with the reference (a retried callback, a
re-imported bank file, two clerks at once) collides on the stream's first version and is
applied never, only answered as the first was.

What a charge costs, what a discount takes off and when a surcharge starts are the rules' (in
rules.py, read from the year's files); the account records the amounts they gave.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

ACCOUNT_NAMESPACE = UUID("5d3f2a10-7c4b-5e8a-9b1c-2d3e4f5a6b7c")
REFERENCE_NAMESPACE = UUID("9a8b7c6d-5e4f-5a3b-8c2d-1e0f9a8b7c6d")

KINDS = ("predial", "agua", "multas")  # also the clerks' areas: one per concept
CHANNELS = ("online", "window", "bank")
ZERO = Decimal("0.00")
KEY = {  # how each kind's key is written on its bill
    "predial": re.compile(r"^[0-9]{2}-[0-9]{3}-[0-9]{3,4}-[0-9]{3}$"),  # clave catastral
    "agua": re.compile(r"^AG-[0-9]{4,8}$"),  # contrato
    "multas": re.compile(r"^M-[0-9]{4}-[0-9]{4,8}$"),  # boleta
}
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BillingError(Exception):
    """A rule of billing refused the command (the message says which)."""


class InvalidCommand(BillingError):
    pass


class NothingOwed(BillingError):
    """A payment, discount or statement for an account that owes nothing it could apply to."""


class ReferenceReused(BillingError):
    """A payment reference already used for another payment (another account or amount)."""


class NotReversible(BillingError):
    """A reversal of a payment this account never received, or received and already reversed."""


def account_id(kind: str, key: str) -> UUID:
    return uuid5(ACCOUNT_NAMESPACE, f"{kind}:{key}")


def reference_id(reference: str) -> UUID:
    return uuid5(REFERENCE_NAMESPACE, reference)


def check_key(kind: str, key: str) -> str:
    if kind not in KINDS:
        raise InvalidCommand(f"an account is one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(key, str) or not KEY[kind].fullmatch(key):
        raise InvalidCommand(f"{key!r} is not a {kind} key as the bill prints it")
    return key


@dataclass
class Charge:
    """One charge on the account and what has happened to it since."""

    charge_id: str
    concept: str
    period: str
    amount: Decimal
    due: date
    assessed_on: date
    discounts: Decimal = ZERO
    surcharges: Decimal = ZERO
    paid: Decimal = ZERO
    surcharge_months: int = 0  # how many months of surcharge are applied already
    credited: Decimal = ZERO  # of `paid`, what an earlier overpayment settled

    @property
    def owed(self) -> Decimal:
        return self.amount - self.discounts + self.surcharges - self.paid

    @property
    def principal_owed(self) -> Decimal:
        """What is left of the charge itself (a surcharge is a percentage of this)."""
        return max(ZERO, self.amount - self.discounts - min(self.paid, self.amount))


@dataclass
class Payment:
    reference: str
    amount: Decimal
    channel: str
    paid_at: datetime
    allocations: dict[str, Decimal]  # charge id -> pesos of this payment it took
    discount: Decimal  # the early discount this payment earned (withdrawn if it is reversed)
    discount_by_charge: dict[str, Decimal]
    reversed: bool = False
    by: str | None = None  # the clerk at the window
    authorization: str | None = None  # the card provider's or bank's own number


class Account(Aggregate):
    """One account: its holder, its charges and every peso that moved on it."""

    @staticmethod
    def create_id(kind: str, key: str, **_: Any) -> UUID:
        return account_id(kind, key)

    @event("Opened")
    def __init__(self, kind: str, key: str, check: str, holder: str, description: str,
                 details: dict[str, Any], opened_on: date, by: str) -> None:
        self.kind, self.key, self.check = kind, key, check
        self.holder, self.description, self.details = holder, description, details
        self.opened_on = opened_on
        self.charges: dict[str, Charge] = {}
        self.payments: dict[str, Payment] = {}
        self.credit = ZERO  # paid beyond every charge: taken by the next charge assessed
        self.readings: list[tuple[date, Decimal]] = []
        self.statements: dict[str, Decimal] = {}  # statement number -> balance it showed
        self.lines: list[dict[str, Any]] = []  # the ledger as a statement prints it

    @classmethod
    def open(cls, kind: str, key: str, check: str, holder: str, description: str,
             details: dict[str, Any], opened_on: date, by: str) -> Account:
        check_key(kind, key)
        return cls(kind, key, check, holder, description, details, opened_on, by)

    def check_matches(self, check: str) -> bool:
        """The bill's check value (a plate for a fine), compared in constant time."""
        return hmac.compare_digest(self.check.upper().encode(), check.strip().upper().encode())

    @property
    def balance(self) -> Decimal:
        """What the account owes (negative: a credit in the citizen's favour)."""
        return sum((line["amount"] for line in self.lines), ZERO)

    def open_charges(self) -> list[Charge]:
        """Charges with something owed, oldest due first: a payment settles them in this order."""
        return sorted((c for c in self.charges.values() if c.owed > 0),
                      key=lambda c: (c.due, c.charge_id))

    # ---- charges ---------------------------------------------------------------------------------

    def assess(self, charge_id: str, concept: str, period: str, amount: Decimal, due: date,
               assessed_on: date, rules_version: int, basis: dict[str, Any]) -> None:
        if charge_id in self.charges:
            raise InvalidCommand(f"{concept} ({period}) is charged already")
        if amount <= 0:
            raise InvalidCommand("a charge is more than zero")
        self._assessed(charge_id, concept, period, amount, due, assessed_on, rules_version, basis)

    @event("ChargeAssessed")
    def _assessed(self, charge_id: str, concept: str, period: str, amount: Decimal, due: date,
                  assessed_on: date, rules_version: int, basis: dict[str, Any]) -> None:
        charge = Charge(charge_id, concept, period, amount, due, assessed_on)
        self.charges[charge_id] = charge
        self._line(assessed_on, "charge", concept, period, amount)
        if self.credit > 0:  # an earlier overpayment settles what it can of the new charge
            taken = min(self.credit, charge.owed)
            charge.paid += taken
            charge.credited += taken
            self.credit -= taken

    def record_reading(self, read_on: date, reading: Decimal) -> Decimal:
        """A water meter reading; returns the m³ consumed since the last one."""
        if self.kind != "agua":
            raise InvalidCommand("only a water contract has a meter")
        last_on, last = self.readings[-1] if self.readings else (None, Decimal(
            str(self.details.get("initial_reading", "0"))))
        if last_on is not None and read_on <= last_on:
            raise InvalidCommand(f"a reading comes after the last one ({last_on.isoformat()})")
        if reading < last:
            raise InvalidCommand(f"the meter reads {reading}, less than its last {last}")
        self._reading_recorded(read_on, reading)
        return reading - last

    @event("ReadingRecorded")
    def _reading_recorded(self, read_on: date, reading: Decimal) -> None:
        self.readings.append((read_on, reading))

    # ---- discounts and surcharges ----------------------------------------------------------------

    def discount(self, charge_id: str, amount: Decimal, concept: str, reason: str,
                 on: date, granted_by: str | None, with_payment: str | None,
                 rules_version: int) -> None:
        charge = self._charge(charge_id)
        if amount <= 0 or amount > charge.principal_owed:
            raise NothingOwed(f"a discount of {amount} is more than {charge.concept} still owes")
        self._discounted(charge_id, amount, concept, reason, on, granted_by, with_payment,
                         rules_version)

    @event("DiscountApplied")
    def _discounted(self, charge_id: str, amount: Decimal, concept: str, reason: str, on: date,
                    granted_by: str | None, with_payment: str | None,
                    rules_version: int) -> None:
        self.charges[charge_id].discounts += amount
        self._line(on, "discount", concept, self.charges[charge_id].period, -amount,
                   charge_id=charge_id, with_payment=with_payment, reason=reason)

    def surcharge(self, charge_id: str, months: int, amount: Decimal, on: date,
                  rules_version: int) -> None:
        charge = self._charge(charge_id)
        if months <= charge.surcharge_months or amount <= 0:
            raise InvalidCommand(f"{charge.concept} has {charge.surcharge_months} months of "
                                 f"surcharge already")
        self._surcharged(charge_id, months, amount, on, rules_version)

    @event("SurchargeApplied")
    def _surcharged(self, charge_id: str, months: int, amount: Decimal, on: date,
                    rules_version: int) -> None:
        charge = self.charges[charge_id]
        charge.surcharges += amount
        charge.surcharge_months = months
        self._line(on, "surcharge", f"Recargos {charge.concept} ({months} meses)",
                   charge.period, amount)

    # ---- payments --------------------------------------------------------------------------------

    def pay(self, reference: str, amount: Decimal, channel: str, paid_at: datetime,
            by: str | None, authorization: str | None) -> None:
        if reference in self.payments:
            raise ReferenceReused(f"payment {reference} is applied to this account already")
        if channel not in CHANNELS:
            raise InvalidCommand(f"a payment comes {', '.join(CHANNELS)}, not {channel!r}")
        if amount <= 0:
            raise InvalidCommand("a payment is more than zero")
        allocations: dict[str, Decimal] = {}
        left = amount
        for charge in self.open_charges():  # oldest first; what is left over is a credit
            take = min(left, charge.owed)
            if take > 0:
                allocations[charge.charge_id] = take
                left -= take
        self._paid(reference, amount, channel, paid_at, by, authorization,
                   {key: str(value) for key, value in allocations.items()})

    @event("PaymentReceived")
    def _paid(self, reference: str, amount: Decimal, channel: str, paid_at: datetime,
              by: str | None, authorization: str | None, allocations: dict[str, str]) -> None:
        taken = {key: Decimal(value) for key, value in allocations.items()}
        for charge_id, part in taken.items():
            self.charges[charge_id].paid += part
        self.credit += amount - sum(taken.values(), ZERO)
        discounts = {line["charge_id"]: -line["amount"] for line in self.lines
                     if line.get("with_payment") == reference}
        self.payments[reference] = Payment(reference, amount, channel, paid_at, taken,
                                           sum(discounts.values(), ZERO), discounts,
                                           by=by, authorization=authorization)
        self._line(paid_at.date(), "payment", f"Pago {reference}", "", -amount,
                   reference=reference)

    def reverse(self, reference: str, reason: str, on: date, by: str) -> None:
        payment = self.payments.get(reference)
        if payment is None or payment.reversed:
            raise NotReversible(f"payment {reference} is not on this account, or is reversed")
        self._reversed(reference, reason, on, by)

    @event("PaymentReversed")
    def _reversed(self, reference: str, reason: str, on: date, by: str) -> None:
        payment = self.payments[reference]
        payment.reversed = True
        unallocated = payment.amount - sum(payment.allocations.values(), ZERO)
        self.credit -= unallocated
        for charge_id, part in payment.allocations.items():
            self.charges[charge_id].paid -= part
        if self.credit < 0:  # the overpayment was taken by later charges: they owe it again
            for charge in sorted(self.charges.values(), key=lambda c: c.due, reverse=True):
                back = min(-self.credit, charge.paid)
                charge.paid -= back
                charge.credited = max(ZERO, charge.credited - back)
                self.credit += back
        for charge_id, part in payment.discount_by_charge.items():
            self.charges[charge_id].discounts -= part  # the early discount needed this payment
        for charge in self.open_charges():  # a credit left by another payment settles them again
            taken = min(self.credit, charge.owed)
            if taken <= 0:
                break
            charge.paid += taken
            charge.credited += taken
            self.credit -= taken
        self._line(on, "reversal", f"Pago {reference} cancelado: {reason}", "",
                   payment.amount, reference=reference)
        if payment.discount:  # earned by settling in full: gone with the payment
            self._line(on, "discount", f"Descuento retirado (pago {reference} cancelado)", "",
                       payment.discount, reference=reference)

    # ---- statements ------------------------------------------------------------------------------

    @event("StatementIssued")
    def issue_statement(self, number: str, as_of: date, balance: Decimal, to_pay: Decimal,
                        until: date) -> None:
        self.statements[number] = balance

    # ---- the ledger ------------------------------------------------------------------------------

    def _charge(self, charge_id: str) -> Charge:
        try:
            return self.charges[charge_id]
        except KeyError:
            raise NothingOwed(f"no charge {charge_id} on this account") from None

    def _line(self, on: date, kind: str, concept: str, period: str, amount: Decimal,
              **more: Any) -> None:
        self.lines.append({"date": on, "kind": kind, "concept": concept, "period": period,
                           "amount": amount, **more})


class PaymentReference(Aggregate):
    """A payment reference, taken once: which account it paid, how much, through which door."""

    @staticmethod
    def create_id(reference: str, **_: Any) -> UUID:
        return reference_id(reference)

    @event("Taken")
    def __init__(self, reference: str, kind: str, key: str, amount: Decimal, channel: str) -> None:
        self.reference, self.kind, self.key = reference, kind, key
        self.amount, self.channel = amount, channel

    @classmethod
    def take(cls, reference: str, kind: str, key: str, amount: Decimal,
             channel: str) -> PaymentReference:
        if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
            raise InvalidCommand("a payment reference is 1-64 letters, digits, '.', '_' or '-'")
        return cls(reference, kind, key, amount, channel)
