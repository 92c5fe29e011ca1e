"""Billing's rules as data: one YAML file per concept and year that an admin edits, and the pure
functions that apply them (discounts, surcharges, water blocks, fines); rulesfile.py reads them.

`services/billing/rules/<concept>-<year>.yaml` holds the rules of `predial`, `agua` or `multas` for
one year, with a `version` that charges record so a bill can say which rules made it. Every amount
a function returns is rounded once, to the centavo, half up (money.py). Who may grant a clerk's
discount is the caller's rule (the `billing_clerk` of the area); these functions only price it.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.billing.money import ZERO, Number, cents, exact, parse, percent


class RulesError(ValueError):
    """A rules file cannot be used as written (the message names the file and the key)."""


class NotInRules(ValueError):
    """A code the year's rules do not list: an offence, a clerk's discount reason."""


@dataclass(frozen=True)
class EarlyDiscount:
    until: date  # paid on or before this day
    percent: Decimal


@dataclass(frozen=True)
class Block:
    from_m3: Decimal
    to_m3: Decimal | None  # None: and above
    price: Decimal  # per m³ within the block


@dataclass(frozen=True)
class Offence:
    description: str
    umas: Decimal


@dataclass(frozen=True)
class PredialRules:
    year: int
    version: int
    rate_per_mil: Decimal  # yearly levy: cadastral value × rate / 1000 ("al millar")
    due: date
    early_discounts: tuple[EarlyDiscount, ...]
    surcharge_percent: Decimal  # per month started after the due date
    clerk_discounts: Mapping[str, Decimal]
    concept = "predial"


@dataclass(frozen=True)
class WaterRules:
    year: int
    version: int
    service_fee: Decimal  # fixed, every month
    blocks: tuple[Block, ...]
    due_days: int  # after the bill is issued
    surcharge_percent: Decimal
    clerk_discounts: Mapping[str, Decimal]
    concept = "agua"


@dataclass(frozen=True)
class FineRules:
    year: int
    version: int
    uma: Decimal  # the year's UMA in pesos
    offences: Mapping[str, Offence]
    discount_within_days: int
    discount_percent: Decimal
    due_days: int  # after the ticket
    surcharge_percent: Decimal
    clerk_discounts: Mapping[str, Decimal]
    concept = "multas"


Rules = PredialRules | WaterRules | FineRules


# ---- applying the rules ------------------------------------------------------------------------

def predial_levy(rules: PredialRules, cadastral_value: Number) -> Decimal:
    """The year's property tax: cadastral value × rate per mil."""
    return cents(_charge(cadastral_value) * rules.rate_per_mil / 1000)


def early_discount(rules: PredialRules, amount: Number, paid_on: date) -> Decimal:
    """The discount for paying early: the first step whose `until` is on or after `paid_on`."""
    charge = _charge(amount)
    step = next((s for s in rules.early_discounts if paid_on <= s.until), None)
    return ZERO if step is None else percent(charge, step.percent)


def months_late(due: date, paid_on: date) -> int:
    """Months started after the due date ("por cada mes o fracción"): 0 up to the due date;
    1 from the next day up to the same day a month later (or that month's last day: Jan 31 → Feb
    28, or 29 in a leap year); 2 from the day after that; and so on."""
    months = 0
    while paid_on > add_months(due, months):
        months += 1
    return months


def late_surcharge(rules: Rules, amount: Number, due: date, paid_on: date) -> Decimal:
    """Surcharge (recargos): the monthly percent × months started after `due`, simple, not
    compounded, rounded once."""
    charge = _charge(amount)
    return percent(charge, rules.surcharge_percent * months_late(due, paid_on))


def consumption_charge(rules: WaterRules, m3: Number) -> Decimal:
    """Water used, progressive: each block's m³ at that block's price (10 m³ all in 0–10)."""
    used = exact(m3, "a consumption in m³")
    if used < 0:
        raise ValueError(f"a consumption cannot be negative: {used}")
    total = Decimal(0)
    for block in rules.blocks:
        if used <= block.from_m3:
            break
        top = used if block.to_m3 is None else min(used, block.to_m3)
        total += (top - block.from_m3) * block.price
    return cents(total)


def water_charge(rules: WaterRules, m3: Number) -> Decimal:
    """One month's water bill: the fixed service fee plus the consumption."""
    return rules.service_fee + consumption_charge(rules, m3)


def fine_amount(rules: FineRules, offence: str) -> Decimal:
    """A fine in pesos: the offence's UMAs × the year's UMA."""
    if offence not in rules.offences:
        raise NotInRules(f"offence {offence!r} is not in the {rules.year} fines")
    return cents(rules.offences[offence].umas * rules.uma)


def fine_discount(rules: FineRules, amount: Number, ticket_on: date, paid_on: date) -> Decimal:
    """The discount for paying a fine within N days of the ticket (the ticket's day is day 0, so
    day N still has it and day N+1 does not)."""
    charge = _charge(amount)
    if paid_on < ticket_on:
        raise ValueError(f"a payment on {paid_on} is before the ticket of {ticket_on}")
    if (paid_on - ticket_on).days > rules.discount_within_days:
        return ZERO
    return percent(charge, rules.discount_percent)


def clerk_discount(rules: Rules, amount: Number, reason: str) -> Decimal:
    """A discount a clerk grants at the window (adulto_mayor, discapacidad) for a listed reason."""
    charge = _charge(amount)
    if reason not in rules.clerk_discounts:
        allowed = ", ".join(rules.clerk_discounts) or "none"
        raise NotInRules(f"no clerk discount {reason!r} in {rules.concept} {rules.year} "
                         f"(allowed: {allowed})")
    return percent(charge, rules.clerk_discounts[reason])


def _charge(amount: Number) -> Decimal:
    value = parse(amount)
    if value < 0:
        raise ValueError(f"a charge cannot be negative: {value}")
    return value


def add_months(day: date, months: int) -> date:
    years, month = divmod(day.month - 1 + months, 12)
    year = day.year + years
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


# ---- reading a rules file ----------------------------------------------------------------------
