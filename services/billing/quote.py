"""What an account owes on a given day: the surcharges run up and the discounts on offer (no I/O).

A quote is what the statement shows as "to pay today" and what a payment settles against:

- every charge past its due date runs up a surcharge for each month or part of one (the months
  not applied yet are added, on what is left of the charge itself);
- a charge paid in full on time earns its early discount (predial: 15/10/5 % by month; a fine:
  paid within N days of the ticket). A discount a clerk granted comes first; the early discount
  is a percentage of what is left after it (they stack, one after the other);
- the amount holds until `until`: the last day before a discount step ends or a surcharge month
  starts, whichever comes first.

A payment of the whole amount earns the discounts; a smaller one does not (it is a partial
payment, applied oldest charge first), and the surcharges are applied either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from . import rules
from .domainmodel import ZERO, Account, Charge
from .money import percent

RulesFor = Callable[[str, int], rules.Rules]  # (concept, year) -> that year's rules


@dataclass(frozen=True)
class Surcharge:
    charge_id: str
    months: int
    amount: Decimal
    rules_version: int


@dataclass(frozen=True)
class Discount:
    charge_id: str
    amount: Decimal
    concept: str
    reason: str
    rules_version: int


@dataclass
class Quote:
    as_of: date
    total: Decimal  # what settles the account today, discounts and surcharges included
    until: date  # the last day `total` holds
    surcharges: list[Surcharge] = field(default_factory=list)
    discounts: list[Discount] = field(default_factory=list)

    @property
    def discount(self) -> Decimal:
        return sum((d.amount for d in self.discounts), ZERO)


def quote(account: Account, rules_for: RulesFor, today: date) -> Quote:
    """What `account` owes on `today` and until when, with the surcharges and discounts."""
    result = Quote(today, ZERO, date.max)
    for charge in account.open_charges():
        found = rules_for(account.kind, int(charge.period[:4]))
        surcharge = _surcharge(found, charge, today)
        if surcharge is not None:
            result.surcharges.append(surcharge)
        discount = _discount(account.kind, found, charge, today)
        if discount is not None:
            result.discounts.append(discount[0])
        result.until = min(result.until, _holds_until(found, charge, today,
                                                      None if discount is None else discount[1]))
    if result.until == date.max:
        result.until = today  # nothing owed: the figure (zero) is today's
    added = sum((s.amount for s in result.surcharges), ZERO)
    result.total = max(ZERO, account.balance + added - result.discount)
    return result


def _surcharge(found: rules.Rules, charge: Charge, today: date) -> Surcharge | None:
    months = rules.months_late(charge.due, today)
    if months <= charge.surcharge_months or charge.principal_owed <= 0:
        return None
    more = months - charge.surcharge_months
    amount = percent(charge.principal_owed, found.surcharge_percent * more)
    return None if amount <= 0 else Surcharge(charge.charge_id, months, amount, found.version)


def _discount(kind: str, found: rules.Rules, charge: Charge, today: date
              ) -> tuple[Discount, date] | None:
    """The early discount the charge earns if paid in full today, and its last day."""
    if charge.paid > charge.credited or charge.surcharges > 0:
        return None  # a charge paid in part (beyond an earlier credit), or late, has none left
    base = charge.amount - charge.discounts  # after a clerk's discount
    if isinstance(found, rules.PredialRules):
        step = next((s for s in found.early_discounts if today <= s.until), None)
        if step is None:
            return None
        amount = rules.early_discount(found, base, today)
        label = f"Descuento por pronto pago {step.percent} %"
        last = step.until
    elif isinstance(found, rules.FineRules):
        amount = rules.fine_discount(found, base, charge.assessed_on, today)
        label = f"Descuento por pago dentro de {found.discount_within_days} días"
        last = charge.assessed_on + timedelta(days=found.discount_within_days)
    else:
        return None
    if amount <= 0:
        return None
    return Discount(charge.charge_id, amount, label, f"pronto_pago_{kind}", found.version), last


def _holds_until(found: rules.Rules, charge: Charge, today: date, discount_ends: date | None
                 ) -> date:
    """The last day on which this charge's figure stays as it is today."""
    months = rules.months_late(charge.due, today)
    next_month_starts = rules.add_months(charge.due, months)  # surcharge month `months` ends
    return min(next_month_starts, discount_ends or next_month_starts)
