"""BillingApplication: the use cases of accounts and payments (no nameko, no HTTP).

Each use case loads an account, calls its commands and saves; a version conflict (a clerk and
the bank at once) retries on fresh state, rules included. A payment saves its reference's stream
in the same transaction: the reference is taken once, so the same payment never lands twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    RecordConflictError,
    Transcoding,
)

from shared.chassis.sqlstore import SqlStore

from . import rules, rulesfile
from .domainmodel import (
    Account,
    Charge,
    InvalidCommand,
    NothingOwed,
    Payment,
    PaymentReference,
    ReferenceReused,
    account_id,
    check_key,
    reference_id,
)
from .quote import Quote, quote

# Each round one writer wins, so N writers at once need N rounds: two replicas' bank appliers
# (8 each), the window and online callbacks on one account must all get in.
MAX_CONFLICT_RETRIES = 32


class AccountNotFound(LookupError):
    """No such account, or the check value does not match (the same answer: no oracle)."""


class AlreadyExists(Exception):
    """An account with that key exists already."""


class Applied:
    """A payment as it stands: applied now, or found applied before under its reference."""

    def __init__(self, account: Account, reference: str, first_time: bool) -> None:
        self.account, self.reference, self.first_time = account, reference, first_time

    @property
    def payment(self) -> Any:
        return self.account.payments[self.reference]


class DateAsISO(Transcoding):
    """A day (a due date, a reading's date) as "2026-03-31"."""

    type, name = date, "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ChargeAsDict(Transcoding):
    """A charge inside an account's snapshot."""

    type, name = Charge, "billing_charge"

    def encode(self, obj: Charge) -> dict[str, Any]:
        return dict(vars(obj))

    def decode(self, data: dict[str, Any]) -> Charge:
        return Charge(**data)


class PaymentAsDict(Transcoding):
    """A payment inside an account's snapshot."""

    type, name = Payment, "billing_payment"

    def encode(self, obj: Payment) -> dict[str, Any]:
        return dict(vars(obj))

    def decode(self, data: dict[str, Any]) -> Payment:
        return Payment(**data)


class BillingApplication(Application[UUID]):
    """Predial, water and fines accounts: charges, discounts, surcharges, payments."""

    name = "billing"
    snapshotting_intervals = {Account: 50}  # a water contract gains two events a month

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.sql = SqlStore.from_env(dict(self.construct_env(self.name, env)), name=self.name)
        with self.sql.library_schema_lock():  # replicas starting together: one creates tables
            super().__init__(env)
        self.rules_dir = Path(self.env.get("RULES_DIR") or rulesfile.RULES)
        self.rules_for: Callable[[str, int], rules.Rules] = lru_cache(maxsize=64)(
            lambda concept, year: rulesfile.load(concept, year, self.rules_dir))
        self.saved_listeners: list[Callable[[], None]] = []

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in (DateAsISO(), ChargeAsDict(), PaymentAsDict()):
            transcoder.register(transcoding)

    def _notify(self, recordings: list[Any]) -> None:
        for listener in self.saved_listeners:  # wakes the projector at once
            listener()

    def close(self) -> None:
        super().close()
        self.sql.close()

    # ---- accounts --------------------------------------------------------------------------------

    def open_account(self, kind: str, key: str, check: str, holder: str, description: str,
                     details: dict[str, Any], opened_on: date, by: str) -> Account:
        """Example: open_account("predial", "14-001-0123-045", "7391", "María López",
        "Av. Juárez 12, Centro", {"cadastral_value": "850000.00"}, date(2026, 1, 2), "admin")"""
        account = Account.open(kind, key, check, holder, description, details, opened_on, by)
        if kind == "multas":  # a fine is its charge: assessed with the ticket
            self._assess_fine(account)
        try:
            self.save(account)
        except (IntegrityError, RecordConflictError):
            raise AlreadyExists(f"{kind} account {key} exists already") from None
        return account

    def account(self, kind: str, key: str) -> Account:
        check_key(kind, key)
        try:
            return self.repository.get(account_id(kind, key))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise AccountNotFound(f"no {kind} account {key}") from None

    def look_up(self, kind: str, key: str, check: str) -> Account:
        """The account a citizen opens with the key and the bill's check value (a fine: the
        plate); a wrong check answers as an unknown key does."""
        try:
            account = self.account(kind, key)
        except (AccountNotFound, InvalidCommand):
            raise AccountNotFound("no account with that key and check value") from None
        if not account.check_matches(check):
            raise AccountNotFound("no account with that key and check value")
        return account

    def quote(self, account: Account, today: date) -> Quote:
        return quote(account, self.rules_for, today)

    # ---- charges ---------------------------------------------------------------------------------

    def assess_predial(self, key: str, year: int, on: date) -> Account:
        """The year's levy from the cadastral value: charged once a year, due by the rules."""
        def command(account: Account) -> None:
            found = self._rules("predial", year)
            assert isinstance(found, rules.PredialRules)
            levy = rules.predial_levy(found, account.details["cadastral_value"])
            account.assess(f"predial-{year}", f"Impuesto predial {year}", str(year), levy,
                           found.due, on, found.version,
                           {"cadastral_value": account.details["cadastral_value"]})
        return self._change("predial", key, command)

    def record_reading(self, key: str, read_on: date, reading: Decimal) -> Account:
        """A water meter reading: the month's bill from the m³ used since the last one."""
        def command(account: Account) -> None:
            found = self._rules("agua", read_on.year)
            assert isinstance(found, rules.WaterRules)
            used = account.record_reading(read_on, reading)
            period = f"{read_on.year}-{read_on.month:02d}"
            account.assess(f"agua-{period}", f"Agua {period} ({used} m³)", period,
                           rules.water_charge(found, used),
                           read_on + timedelta(days=found.due_days), read_on, found.version,
                           {"m3": str(used), "reading": str(reading)})
        return self._change("agua", key, command)

    def _assess_fine(self, account: Account) -> None:
        ticket_on = date.fromisoformat(str(account.details["ticket_on"]))
        found = self._rules("multas", ticket_on.year)
        assert isinstance(found, rules.FineRules)
        offence = str(account.details["offence"])
        account.assess(f"multa-{account.key}", found.offences[offence].description
                       if offence in found.offences else offence, ticket_on.isoformat(),
                       rules.fine_amount(found, offence),
                       ticket_on + timedelta(days=found.due_days), ticket_on, found.version,
                       {"offence": offence, "plate": account.details.get("plate")})

    def grant_discount(self, kind: str, key: str, reason: str, on: date, clerk: str) -> Account:
        """A clerk's discount at the window (adulto_mayor, discapacidad) on every open charge."""
        def command(account: Account) -> None:
            granted = False
            for charge in account.open_charges():
                found = self._rules(kind, int(charge.period[:4]))
                if any(line.get("reason") == reason and line.get("charge_id") == charge.charge_id
                       for line in account.lines):
                    continue
                amount = rules.clerk_discount(found, charge.amount, reason)
                if 0 < amount <= charge.principal_owed:
                    account.discount(charge.charge_id, amount,
                                     f"Descuento {reason.replace('_', ' ')} "
                                     f"{found.clerk_discounts[reason]} %",
                                     reason, on, clerk, None, found.version)
                    granted = True
            if not granted:
                raise NothingOwed(f"{kind} {key} has no open charge this discount applies to")
        return self._change(kind, key, command)

    # ---- payments --------------------------------------------------------------------------------

    def pay(self, kind: str, key: str, reference: str, amount: Decimal, channel: str,
            paid_at: datetime, by: str | None = None,
            authorization: str | None = None) -> Applied:
        """Apply a payment once: the surcharges due that day, the early discounts if it settles
        the account, then the payment. The same reference again answers the first payment."""
        for attempt in range(MAX_CONFLICT_RETRIES):
            account = self.account(kind, key)
            # A reference is looked up only when it may be taken: it is on this account, or a
            # save failed (the reference's stream was there, or the account moved meanwhile).
            if attempt or reference in account.payments:
                first = self._already_paid(reference, kind, key, amount)
                if first is not None:
                    return first
            today = paid_at.date()
            owed = self.quote(account, today)
            for surcharge in owed.surcharges:
                account.surcharge(surcharge.charge_id, surcharge.months, surcharge.amount, today,
                                  surcharge.rules_version)
            if owed.total > 0 and amount >= owed.total:
                for discount in owed.discounts:
                    account.discount(discount.charge_id, discount.amount, discount.concept,
                                     discount.reason, today, None, reference,
                                     discount.rules_version)
            account.pay(reference, amount, channel, paid_at, by, authorization)
            taken = PaymentReference.take(reference, kind, key, amount, channel)
            try:
                self.save(account, taken)
            except (IntegrityError, RecordConflictError):
                continue  # another writer won: the account moved, or the reference is taken
            return Applied(account, reference, True)
        raise RecordConflictError(f"{kind} {key} is too busy; try again")

    def _already_paid(self, reference: str, kind: str, key: str,
                      amount: Decimal) -> Applied | None:
        try:
            taken: PaymentReference = self.repository.get(reference_id(reference))
        except AggregateNotFoundError:
            return None
        if (taken.kind, taken.key, taken.amount) != (kind, key, amount):
            raise ReferenceReused(f"payment reference {reference} was used for another payment")
        return Applied(self.account(kind, key), reference, False)

    def payment(self, reference: str) -> Applied:
        """A payment by its reference, with the account it paid (for its receipt)."""
        try:
            taken: PaymentReference = self.repository.get(reference_id(reference))
        except (AggregateNotFoundError, ValueError):
            raise AccountNotFound(f"no payment {reference}") from None
        return Applied(self.account(taken.kind, taken.key), reference, False)

    def reverse(self, reference: str, reason: str, on: date, by: str) -> Account:
        """Reverse a payment (a bounced cheque, a chargeback): the balance is as before it."""
        taken = self.payment(reference)
        return self._change(taken.account.kind, taken.account.key,
                            lambda account: account.reverse(reference, reason, on, by))

    # ---- statements ------------------------------------------------------------------------------

    def issue_statement(self, kind: str, key: str, period: str, today: date) -> Account:
        """Record the statement of `period` (once: a batch run twice issues it once)."""
        number = statement_number(kind, key, period)

        def command(account: Account) -> None:
            if number in account.statements:
                return
            owed = self.quote(account, today)
            account.issue_statement(number, today, account.balance, owed.total, owed.until)
        return self._change(kind, key, command)

    # ---- the save loop ---------------------------------------------------------------------------

    def _rules(self, concept: str, year: int) -> rules.Rules:
        try:
            return self.rules_for(concept, year)
        except rules.RulesError as error:
            raise InvalidCommand(f"no {concept} rules for {year}: {error}") from None

    def _change(self, kind: str, key: str, command: Callable[[Account], None]) -> Account:
        for _ in range(MAX_CONFLICT_RETRIES):
            account = self.account(kind, key)
            command(account)
            if not account.pending_events:
                return account
            try:
                self.save(account)
            except RecordConflictError:
                continue
            return account
        raise RecordConflictError(f"{kind} {key} is too busy; try again")


def statement_number(kind: str, key: str, period: str) -> str:
    return f"EC-{period}-{kind}-{key}"


__all__ = ["AccountNotFound", "AlreadyExists", "Applied", "BillingApplication", "ReferenceReused",
           "statement_number"]
