"""CrewsApplication: the use cases of crews and the materials catalog (no nameko, no HTTP).

Each use case loads a crew or a material, calls its command and saves; a version conflict (two
supervisors at once) retries on fresh state, rules included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, RecordConflictError

from shared.chassis.sqlstore import SqlStore

from .domainmodel import Crew, InvalidCommand, Material, crew_id, material_id

MAX_CONFLICT_RETRIES = 10  # each round one writer wins: ten writers at once all get in
A = TypeVar("A", bound=Aggregate)


class CrewNotFound(LookupError):
    pass


class MaterialNotFound(LookupError):
    pass


class AlreadyExists(Exception):
    """A crew or material with that code exists already."""


def quantity(value: Any) -> Decimal:
    """A materials quantity as an exact decimal (a string or a Decimal; 0.5 m³, 3 piezas)."""
    if isinstance(value, (float, bool)):
        raise InvalidCommand("a quantity is written as a decimal string, e.g. \"0.5\"")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidCommand(f"a quantity is a decimal amount, not {value!r}") from None
    if not amount.is_finite() or amount <= 0 or amount > 100000:
        raise InvalidCommand("a quantity is more than 0 and at most 100000")
    return amount


class CrewsApplication(Application[UUID]):
    """Crews (members, shifts, availability, position) and the materials catalog."""

    name = "crews"
    # A crew reports its position all day: a snapshot every 100 events keeps a load short.
    snapshotting_intervals = {Crew: 100}

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.sql = SqlStore.from_env(dict(self.construct_env(self.name, env)), name=self.name)
        with self.sql.library_schema_lock():  # replicas starting together: one creates tables
            super().__init__(env)
        self.saved_listeners: list[Callable[[], None]] = []

    def _notify(self, recordings: list[Any]) -> None:
        # Wakes the projector at once, instead of waiting for its poll.
        for listener in self.saved_listeners:
            listener()

    def close(self) -> None:
        super().close()
        self.sql.close()

    # ---- crews -----------------------------------------------------------------------------------

    def create_crew(self, code: str, name: str, department: str, by: str) -> Crew:
        """Example: create_crew("C-07", "Bacheo Centro", "obras_publicas", by="admin-1")"""
        crew = Crew.create(code, name, department, by)
        return self._create(crew, f"crew {code}")

    def crew(self, code: str) -> Crew:
        try:
            return self.repository.get(crew_id(code))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise CrewNotFound(f"no crew has code {code!r}") from None

    def join(self, code: str, member_id: str, name: str, by: str) -> Crew:
        return self._change(self.crew, code, lambda crew: crew.join(member_id, name, by))

    def leave(self, code: str, member_id: str, by: str) -> Crew:
        return self._change(self.crew, code, lambda crew: crew.leave(member_id, by))

    def start_shift(self, code: str, at: datetime, by: str) -> Crew:
        return self._change(self.crew, code, lambda crew: crew.start_shift(at, by))

    def end_shift(self, code: str, at: datetime, by: str) -> Crew:
        return self._change(self.crew, code, lambda crew: crew.end_shift(at, by))

    def set_availability(self, code: str, availability: str, by: str) -> Crew:
        return self._change(self.crew, code,
                            lambda crew: crew.set_availability(availability, by))

    def report_position(self, code: str, lat: float, long: float, at: datetime,
                        by: str) -> Crew:
        return self._change(self.crew, code,
                            lambda crew: crew.report_position(lat, long, at, by))

    # ---- materials -------------------------------------------------------------------------------

    def add_material(self, code: str, description: str, unit: str, unit_cost: Any,
                     effective_at: datetime, by: str) -> Material:
        """Example: add_material("MEZ-ASF", "Mezcla asfáltica en frío", "m3", "1850.00",
        effective_at=datetime(2026, 1, 1, tzinfo=CITY), by="admin-1")"""
        material = Material.add(code, description, unit, unit_cost, effective_at, by)
        return self._create(material, f"material {code}")

    def material(self, code: str) -> Material:
        try:
            return self.repository.get(material_id(code))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise MaterialNotFound(f"no material has code {code!r}") from None

    def change_price(self, code: str, unit_cost: Any, effective_at: datetime,
                     by: str) -> Material:
        return self._change(self.material, code,
                            lambda material: material.change_price(unit_cost, effective_at, by))

    def cost_of(self, code: str, amount: Any, moment: datetime,
                loaded: dict[str, Material] | None = None) -> dict[str, Any]:
        """A materials entry priced as of `moment`: what billing costs a repair from. `loaded`
        keeps the materials one request has read (a phone's queue prices many entries).

        Example: cost_of("MEZ-ASF", "0.5", at) -> {"code": "MEZ-ASF", "unit": "m3",
        "quantity": "0.5", "unit_cost": "1850.00", "cost": "925.00", ...}"""
        if loaded is None:
            material = self.material(code)
        elif code in loaded:
            material = loaded[code]
        else:
            material = loaded[code] = self.material(code)
        how_much = quantity(amount)
        return {"code": material.code, "description": material.description,
                "unit": material.unit, "quantity": str(how_much),
                "unit_cost": str(material.unit_cost_at(moment)),
                "cost": str(material.cost(how_much, moment)), "priced_at": moment.isoformat()}

    # ---- the save loop ---------------------------------------------------------------------------

    def _create(self, aggregate: A, what: str) -> A:
        try:
            self.save(aggregate)
        except (IntegrityError, RecordConflictError):  # its stream's first event is there
            raise AlreadyExists(f"{what} exists already") from None
        return aggregate

    def _change(self, load: Callable[[str], A], code: str, command: Callable[[A], None]) -> A:
        for _ in range(MAX_CONFLICT_RETRIES):
            aggregate = load(code)
            command(aggregate)
            try:
                self.save(aggregate)
            except RecordConflictError:
                continue
            return aggregate
        raise RecordConflictError(f"{code} is too busy; try again")
