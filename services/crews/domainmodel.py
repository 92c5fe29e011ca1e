"""Crews and materials: the field's people and things, their rules and their events (no I/O).

A `Crew` is one stream: created, members joining and leaving, shifts, availability and the last
position it reported. A `Material` is one stream too: the catalog entry and every price change
with the moment it takes effect, so the cost of a materials entry is the unit cost in force when
the crew logged it, never today's.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

CREW_NAMESPACE = UUID("2b7d6c1e-4f3a-5b8c-9d0e-1f2a3b4c5d6e")
MATERIAL_NAMESPACE = UUID("8c9d0e1f-2a3b-5c4d-8e5f-6a7b8c9d0e1f")

CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,19}$")  # C-07, MEZ-ASF: upper case, digits, hyphens
AVAILABILITY = ("available", "busy", "off_shift")
# The units a materials entry is counted in (Spanish, as the catalog prints them).
UNITS = ("m3", "m2", "m", "kg", "tonelada", "litro", "pieza", "bolsa", "rollo", "juego")
CENTAVO = Decimal("0.01")
MAX_UNIT_COST = Decimal("10000000")  # ten million pesos a unit: anything above is a typo


class CrewsError(Exception):
    """A rule of crews or materials refused the command (the message says which)."""


class InvalidCommand(CrewsError):
    pass


class NotAMember(CrewsError):
    pass


class AlreadyAMember(CrewsError):
    pass


class ShiftRuleBroken(CrewsError):
    """A shift started twice, ended before it started, or availability set off shift."""


class NoPriceYet(CrewsError):
    """A material asked for its cost before its first price took effect."""


def crew_id(code: str) -> UUID:
    return uuid5(CREW_NAMESPACE, code)


def material_id(code: str) -> UUID:
    return uuid5(MATERIAL_NAMESPACE, code)


def check_code(code: str, what: str) -> None:
    if not isinstance(code, str) or not CODE.match(code):
        raise InvalidCommand(f"a {what} code is 2 to 20 capital letters, digits or hyphens "
                             f"(e.g. C-07), not {code!r}")


def money(amount: Decimal) -> Decimal:
    """Pesos to the centavo, half up: the one rounding rule of every cost crews computes."""
    return amount.quantize(CENTAVO, rounding=ROUND_HALF_UP)


def unit_cost(value: Any) -> Decimal:
    """A unit cost as exact pesos and centavos (a string or a Decimal, never a float)."""
    if isinstance(value, (float, bool)):
        raise InvalidCommand("a unit cost is written as a decimal string, e.g. \"1250.50\"")
    try:
        cost = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidCommand(f"a unit cost is a decimal amount, not {value!r}") from None
    if not cost.is_finite() or cost < 0 or cost > MAX_UNIT_COST:
        raise InvalidCommand(f"a unit cost is between 0 and {MAX_UNIT_COST} pesos")
    if cost != cost.quantize(CENTAVO):
        raise InvalidCommand("a unit cost has at most two decimals (centavos)")
    return cost.quantize(CENTAVO)


def aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidCommand(f"{what} needs a time zone")
    return moment


class Crew(Aggregate):
    """A field crew of one department: its members, its shift and where it was last seen."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return crew_id(code)

    @event("Created")
    def __init__(self, code: str, name: str, department: str, by: str) -> None:
        self.code = code
        self.name = name
        self.department = department
        self.members: dict[str, str] = {}  # member id -> name
        self.on_shift = False
        self.availability = "off_shift"
        self.position: dict[str, Any] | None = None  # {"lat", "long", "at"}

    @classmethod
    def create(cls, code: str, name: str, department: str, by: str) -> Crew:
        check_code(code, "crew")
        if not name.strip() or not department.strip():
            raise InvalidCommand("a crew needs a name and a department")
        return cls(code=code, name=name.strip(), department=department, by=by)

    # ---- members -----------------------------------------------------------------------------

    def join(self, member_id: str, name: str, by: str) -> None:
        if member_id in self.members:
            raise AlreadyAMember(f"{member_id} is already in crew {self.code}")
        if not member_id.strip() or not name.strip():
            raise InvalidCommand("a member needs an id and a name")
        self._member_joined(member_id=member_id, name=name.strip(), by=by)

    @event("MemberJoined")
    def _member_joined(self, member_id: str, name: str, by: str) -> None:
        self.members[member_id] = name

    def leave(self, member_id: str, by: str) -> None:
        if member_id not in self.members:
            raise NotAMember(f"{member_id} is not in crew {self.code}")
        self._member_left(member_id=member_id, by=by)

    @event("MemberLeft")
    def _member_left(self, member_id: str, by: str) -> None:
        del self.members[member_id]

    # ---- shifts and availability ---------------------------------------------------------------

    def start_shift(self, at: datetime, by: str) -> None:
        if self.on_shift:
            raise ShiftRuleBroken(f"crew {self.code} is already on shift")
        if not self.members:
            raise ShiftRuleBroken(f"crew {self.code} has no members to start a shift")
        self._shift_started(at=aware(at, "a shift's start"), by=by)

    @event("ShiftStarted")
    def _shift_started(self, at: datetime, by: str) -> None:
        self.on_shift = True
        self.availability = "available"

    def end_shift(self, at: datetime, by: str) -> None:
        if not self.on_shift:
            raise ShiftRuleBroken(f"crew {self.code} is not on shift")
        self._shift_ended(at=aware(at, "a shift's end"), by=by)

    @event("ShiftEnded")
    def _shift_ended(self, at: datetime, by: str) -> None:
        self.on_shift = False
        self.availability = "off_shift"

    def set_availability(self, availability: str, by: str) -> None:
        """Available or busy, during a shift; a crew goes off shift by ending it."""
        if availability not in ("available", "busy"):
            raise InvalidCommand("availability is 'available' or 'busy' (end the shift to go "
                                 "off shift)")
        if not self.on_shift:
            raise ShiftRuleBroken(f"crew {self.code} is off shift: start a shift first")
        if availability != self.availability:
            self._availability_changed(availability=availability, by=by)

    @event("AvailabilityChanged")
    def _availability_changed(self, availability: str, by: str) -> None:
        self.availability = availability

    def report_position(self, lat: float, long: float, at: datetime, by: str) -> None:
        """Where the crew is (the device's fix); an older fix than the last one is kept out."""
        if not (-90 <= lat <= 90 and -180 <= long <= 180):
            raise InvalidCommand("a position is a latitude in [-90, 90] and a longitude in "
                                 "[-180, 180]")
        at = aware(at, "a position")
        if self.position is not None and at <= self.position["at"]:
            return  # a late fix from a device that queued it: the newer one stands
        self._position_reported(lat=float(lat), long=float(long), at=at, by=by)

    @event("PositionReported")
    def _position_reported(self, lat: float, long: float, at: datetime, by: str) -> None:
        self.position = {"lat": lat, "long": long, "at": at}


class Material(Aggregate):
    """A catalog material: code, Spanish description, unit and its unit cost over time."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return material_id(code)

    @event("Added")
    def __init__(self, code: str, description: str, unit: str, unit_cost: Decimal,
                 effective_at: datetime, by: str) -> None:
        self.code = code
        self.description = description
        self.unit = unit
        self.prices: list[tuple[datetime, Decimal]] = [(effective_at, unit_cost)]

    @classmethod
    def add(cls, code: str, description: str, unit: str, cost: Any, effective_at: datetime,
            by: str) -> Material:
        check_code(code, "material")
        if not description.strip():
            raise InvalidCommand("a material needs a description")
        if unit not in UNITS:
            raise InvalidCommand(f"a unit is one of {', '.join(UNITS)}, not {unit!r}")
        return cls(code=code, description=description.strip(), unit=unit,
                   unit_cost=unit_cost(cost), effective_at=aware(effective_at, "a price"), by=by)

    def change_price(self, cost: Any, effective_at: datetime, by: str) -> None:
        """A new unit cost from `effective_at` on (a later change for the same moment wins)."""
        first = self.prices[0][0]
        effective_at = aware(effective_at, "a price")
        if effective_at < first:
            raise InvalidCommand(f"material {self.code} has no price before {first.isoformat()}")
        self._price_changed(unit_cost=unit_cost(cost), effective_at=effective_at, by=by)

    @event("PriceChanged")
    def _price_changed(self, unit_cost: Decimal, effective_at: datetime, by: str) -> None:
        kept = [(at, cost) for at, cost in self.prices if at != effective_at]
        self.prices = sorted([*kept, (effective_at, unit_cost)], key=lambda price: price[0])

    def unit_cost_at(self, moment: datetime) -> Decimal:
        """The unit cost in force at `moment`: the last price that took effect by then."""
        moment = aware(moment, "a cost's moment")
        in_force = [cost for at, cost in self.prices if at <= moment]
        if not in_force:
            raise NoPriceYet(f"material {self.code} has no price before "
                             f"{self.prices[0][0].isoformat()}")
        return in_force[-1]

    def cost(self, quantity: Decimal, moment: datetime) -> Decimal:
        """What `quantity` units cost at `moment`, to the centavo."""
        if not quantity.is_finite() or quantity <= 0:
            raise InvalidCommand("a quantity is a positive amount")
        return money(self.unit_cost_at(moment) * quantity)
