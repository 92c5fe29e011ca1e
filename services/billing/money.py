"""Money in billing: exact pesos and centavos (MXN) as `decimal.Decimal`, never floats.

The one rounding rule: an amount is kept to the centavo (two decimals). Every computed amount —
a percentage discount, a surcharge, a water tariff block, UMAs × the UMA's value — is computed
exactly and rounded to the centavo once, at the end, half up (ROUND_HALF_UP: 0.005 → 0.01, as
Mexican tax practice rounds), never in between. `cents` is that rule; everything else calls it.

Amounts come in as text, int or Decimal. A float is refused (TypeError): 0.1 has no exact binary
value, so a float in a bill is already a wrong bill. Text is plain digits with at most two decimals
("1850.50"); thousands separators and currency signs ("1,850.50", "$1850") are refused with a
ValueError, since "1,850" means 1.85 to half the world and 1850 to the other half.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

CENTAVO = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)

AMOUNT = re.compile(r"-?\d+(\.\d{1,2})?")  # "1850", "1850.5", "1850.50", "-20.00"

Number = Decimal | int


def parse(text: str | Decimal | int) -> Decimal:
    """A stated amount (a price, a fee, a payment) as Decimal pesos to the centavo.

    >>> parse("1850.5")
    Decimal('1850.50')
    """
    if isinstance(text, str):
        written = text.strip()
        if "," in written or "$" in written:
            raise ValueError(f"write an amount as plain digits, e.g. 1850.50, not {text!r}")
        if not AMOUNT.fullmatch(written):
            raise ValueError(f"an amount is digits with at most two decimals, not {text!r}")
        return Decimal(written).quantize(CENTAVO)
    value = exact(text, "an amount")
    if value != value.quantize(CENTAVO, rounding=ROUND_HALF_UP):
        raise ValueError(f"an amount has at most two decimals (centavos), not {value}")
    return value.quantize(CENTAVO)


def cents(value: Number) -> Decimal:
    """A computed amount rounded to the centavo, half up: the one rounding rule of billing."""
    return exact(value, "a computed amount").quantize(CENTAVO, rounding=ROUND_HALF_UP)


def percent(amount: Number, pct: Number) -> Decimal:
    """`pct` per cent of `amount`, rounded once: 15 % of 100.10 is 15.02 (15.015, half up)."""
    return cents(exact(amount, "an amount") * exact(pct, "a percentage") / HUNDRED)


def fmt(amount: Number | str) -> str:
    """An amount as a citizen reads it on a statement: "$1,850.50 MXN", "-$20.00 MXN".

    The comma groups thousands and the point marks centavos, as Mexican bills print them. Only an
    amount already to the centavo is shown: rounding happens in `cents`, never on display.
    """
    value = parse(amount)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f} MXN"


def exact(value: object, what: str = "a number") -> Decimal:
    """A quantity or a rate (m³, UMAs, a percentage) as an exact Decimal; a float is refused."""
    if isinstance(value, float):
        raise TypeError(f"{what} is never a float ({value!r}): pass a str, int or Decimal")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise TypeError(f"{what} is a str, int or Decimal, not {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{what} is a finite number, not {value}")
    return number
