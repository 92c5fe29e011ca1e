"""Marshmallow schemas of billing's doors: what each body, form and query accepts.

Amounts are decimal strings to the centavo ("1275.00"), never floats; a key is checked against
the way its bill prints it; a field nobody declared is refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.fields import Line, Text, one_of, pattern

from . import money
from .domainmodel import CHANNELS, KEY, KINDS, REFERENCE

MAX_AMOUNT = Decimal("10000000")  # ten million pesos in one payment: anything above is a typo
REFERENCE_PATTERN = pattern(REFERENCE.pattern, "1-64 letters, digits, '.', '_' or '-'")
EMAIL = pattern(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$", "an email address")
PHONE = pattern(r"^\+[1-9][0-9]{7,14}$", "a phone number with its country code, e.g. "
                "+524421234567")
CHECK = pattern(r"^[A-Za-z0-9-]{3,16}$", "the check value printed on the bill (a fine: the "
                "plate)")


class Amount(fields.Field[Decimal]):
    """Pesos as a decimal string to the centavo, more than zero: "1275.00"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str):
            raise ValidationError("an amount is written as a string, e.g. \"1275.00\"")
        if not value.isascii():  # money.parse's \d would read other scripts' digits
            raise ValidationError("an amount is written with the digits 0-9, e.g. \"1275.00\"")
        try:
            amount = money.parse(value)
        except (ValueError, TypeError) as error:
            raise ValidationError(str(error)) from None
        except ArithmeticError:  # more digits than a Decimal holds: far beyond MAX_AMOUNT
            amount = MAX_AMOUNT + 1
        if amount <= 0 or amount > MAX_AMOUNT:
            raise ValidationError(f"an amount is more than 0 and at most {MAX_AMOUNT}")
        return amount


class AccountPath(Schema):
    kind = one_of(KINDS, required=True)
    key = Line(32, required=True, min_length=1)

    @validates_schema
    def key_as_printed(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] in KEY and not KEY[data["kind"]].fullmatch(data["key"]):
            raise ValidationError({"key": [f"not a {data['kind']} key as the bill prints it"]})


class ReferencePath(Schema):
    reference = Line(64, required=True, validate=REFERENCE_PATTERN)


class CheckQuery(Schema):
    check = Line(16, required=True, validate=CHECK)


class CheckoutSchema(Schema):
    check = Line(16, required=True, validate=CHECK)
    amount = Amount(load_default=None)  # none: what settles the account today


class WindowPaymentSchema(Schema):
    reference = Line(64, required=True, validate=REFERENCE_PATTERN)
    amount = Amount(required=True)


class DiscountSchema(Schema):
    reason = Line(40, required=True, validate=pattern(r"^[a-z][a-z0-9_]{1,39}$",
                                                       "a reason code, e.g. adulto_mayor"))


class ReversalSchema(Schema):
    reason = Text(500, required=True, strip=True, min_length=3)


class ContactSchema(Schema):
    """Where the monthly statement goes: email or WhatsApp."""

    channel = one_of(("email", "whatsapp"), required=True)
    email = Line(254, load_default=None, validate=EMAIL)
    phone = Line(16, load_default=None, validate=PHONE)

    @validates_schema
    def address_for_channel(self, data: dict[str, Any], **_: Any) -> None:
        wanted = "email" if data["channel"] == "email" else "phone"
        if not data.get(wanted):
            raise ValidationError({wanted: [f"needed to send by {data['channel']}"]})


class SendStatementSchema(ContactSchema):
    check = Line(16, required=True, validate=CHECK)


class NewAccountSchema(Schema):
    kind = one_of(KINDS, required=True)
    key = Line(32, required=True, min_length=1)
    check = Line(16, required=True, validate=CHECK)
    holder = Line(120, required=True, strip=True, min_length=1)
    description = Line(200, required=True, strip=True, min_length=1)
    cadastral_value = Amount(load_default=None)  # predial
    initial_reading = Line(12, load_default=None, validate=pattern(r"^\d{1,9}(\.\d{1,3})?$",
                                                                   "m³ on the meter, e.g. 120"))
    plate = Line(10, load_default=None, validate=pattern(r"^[A-Z0-9-]{5,10}$", "a plate"))
    offence = Line(40, load_default=None)
    ticket_on = fields.Date(load_default=None)
    opened_on = fields.Date(load_default=None)

    @validates_schema
    def per_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["kind"]
        if not KEY[kind].fullmatch(data["key"]):
            raise ValidationError({"key": [f"not a {kind} key as the bill prints it"]})
        needed = {"predial": ("cadastral_value",), "agua": (),
                  "multas": ("plate", "offence", "ticket_on")}[kind]
        missing = {name: [f"needed for a {kind} account"] for name in needed
                   if data.get(name) is None}
        if missing:
            raise ValidationError(missing)


class ReadingSchema(Schema):
    read_on = fields.Date(required=True)
    reading = Line(12, required=True, validate=pattern(r"^\d{1,9}(\.\d{1,3})?$",
                                                       "m³ on the meter, e.g. 135.5"))


class AssessSchema(Schema):
    year = fields.Integer(required=True, strict=True, validate=validate.Range(2000, 2100))


class CallbackQuery(Schema):
    """Where the provider sends the citizen back: the payment's reference and its word."""

    reference = Line(64, required=True, validate=REFERENCE_PATTERN)
    status = Line(20, load_default=None)
    check = Line(16, load_default=None, validate=CHECK)


class StatementBatchSchema(Schema):
    period = Line(7, required=True, validate=pattern(r"^20[0-9]{2}-(0[1-9]|1[0-2])$",
                                                     "a month, e.g. 2026-12"))
    kind = one_of(KINDS, load_default=None)
    start_after = Line(64, load_default=None, validate=pattern(
        r"^(predial|agua|multas):[A-Za-z0-9-]{1,32}$", "where a batch got to, e.g. "
        "agua:AG-004512"))
    limit = fields.Integer(load_default=100, strict=True, validate=validate.Range(1, 1000))


PAYMENT_CHANNELS = CHANNELS
