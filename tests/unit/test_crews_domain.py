"""Crews and materials as the municipality lives them: a crew forms, works a shift, reports where
it is; a material's price changes on a date and only from then on. Domain objects and the
application on the in-memory and SQLite stores: no broker, no database server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.crews.application import (
    AlreadyExists,
    CrewNotFound,
    CrewsApplication,
    MaterialNotFound,
)
from services.crews.domainmodel import (
    AlreadyAMember,
    Crew,
    InvalidCommand,
    Material,
    NoPriceYet,
    NotAMember,
    ShiftRuleBroken,
    money,
)

CITY = ZoneInfo("America/Mexico_City")
NEW_YEAR = datetime(2027, 1, 1, tzinfo=CITY)
MORNING = datetime(2026, 12, 5, 8, 0, tzinfo=CITY)


def bacheo_centro() -> Crew:
    crew = Crew.create("C-07", "Bacheo Centro", "obras_publicas", by="admin")
    crew.join("pedro", "Pedro Ramírez", by="sup-obras")
    return crew


def asphalt() -> Material:
    return Material.add("MEZ-ASF", "Mezcla asfáltica en frío", "m3", "1850.00",
                        datetime(2026, 1, 1, tzinfo=CITY), by="admin")


# ---- crews -------------------------------------------------------------------------------------

def test_a_crew_forms_works_a_shift_and_goes_home():
    crew = bacheo_centro()
    crew.join("rosa", "Rosa Hernández", by="sup-obras")
    assert crew.availability == "off_shift" and not crew.on_shift
    crew.start_shift(MORNING, by="pedro")
    assert crew.availability == "available"
    crew.set_availability("busy", by="pedro")
    crew.set_availability("available", by="pedro")
    crew.end_shift(MORNING + timedelta(hours=8), by="pedro")
    assert crew.availability == "off_shift" and crew.members == {
        "pedro": "Pedro Ramírez", "rosa": "Rosa Hernández"}


def test_a_crew_without_members_cannot_start_a_shift():
    crew = Crew.create("C-08", "Alumbrado Norte", "servicios_publicos", by="admin")
    with pytest.raises(ShiftRuleBroken, match="no members"):
        crew.start_shift(MORNING, by="sup")


def test_a_shift_starts_once_and_ends_once():
    crew = bacheo_centro()
    with pytest.raises(ShiftRuleBroken, match="not on shift"):
        crew.end_shift(MORNING, by="pedro")
    crew.start_shift(MORNING, by="pedro")
    with pytest.raises(ShiftRuleBroken, match="already on shift"):
        crew.start_shift(MORNING, by="pedro")


def test_a_crew_off_shift_is_neither_available_nor_busy():
    crew = bacheo_centro()
    with pytest.raises(ShiftRuleBroken, match="off shift"):
        crew.set_availability("available", by="pedro")
    crew.start_shift(MORNING, by="pedro")
    with pytest.raises(InvalidCommand, match="end the shift"):
        crew.set_availability("off_shift", by="pedro")


def test_setting_the_availability_it_has_records_nothing():
    crew = bacheo_centro()
    crew.start_shift(MORNING, by="pedro")
    version = crew.version
    crew.set_availability("available", by="pedro")
    assert crew.version == version


def test_members_join_once_and_leave_once():
    crew = bacheo_centro()
    with pytest.raises(AlreadyAMember):
        crew.join("pedro", "Pedro Ramírez", by="sup")
    crew.leave("pedro", by="sup")
    with pytest.raises(NotAMember):
        crew.leave("pedro", by="sup")


def test_a_late_position_fix_does_not_move_the_crew_back():
    crew = bacheo_centro()
    crew.report_position(20.59, -100.39, MORNING + timedelta(minutes=10), by="pedro")
    crew.report_position(20.60, -100.40, MORNING, by="pedro")  # queued offline, older
    assert crew.position == {"lat": 20.59, "long": -100.39, "at": MORNING + timedelta(minutes=10)}


@pytest.mark.parametrize(("lat", "long"), [(91, 0), (0, -181), (-90.5, 10)])
def test_a_position_off_the_globe_is_refused(lat, long):
    with pytest.raises(InvalidCommand, match="latitude"):
        bacheo_centro().report_position(lat, long, MORNING, by="pedro")


@pytest.mark.parametrize("code", ["c-07", "C", "C 07", "C-07\x00", "", "C-" + "7" * 30])
def test_a_crew_code_is_capitals_digits_and_hyphens(code):
    with pytest.raises(InvalidCommand, match="code"):
        Crew.create(code, "Cuadrilla", "obras_publicas", by="admin")


def test_times_without_a_zone_are_refused():
    with pytest.raises(InvalidCommand, match="time zone"):
        bacheo_centro().start_shift(datetime(2026, 12, 5, 8, 0), by="pedro")


# ---- materials ---------------------------------------------------------------------------------

def test_a_price_change_applies_only_from_its_effective_date():
    material = asphalt()
    material.change_price("1990.50", NEW_YEAR, by="admin")
    last_moment_of_the_year = NEW_YEAR - timedelta(microseconds=1)
    assert material.unit_cost_at(last_moment_of_the_year) == Decimal("1850.00")
    assert material.unit_cost_at(NEW_YEAR) == Decimal("1990.50")
    assert material.cost(Decimal("0.5"), last_moment_of_the_year) == Decimal("925.00")
    assert material.cost(Decimal("0.5"), NEW_YEAR) == Decimal("995.25")


def test_prices_announced_out_of_order_apply_by_their_dates():
    material = asphalt()
    material.change_price("2100.00", NEW_YEAR + timedelta(days=31), by="admin")
    material.change_price("1990.50", NEW_YEAR, by="admin")
    assert [material.unit_cost_at(NEW_YEAR + timedelta(days=d)) for d in (0, 30, 31)] == [
        Decimal("1990.50"), Decimal("1990.50"), Decimal("2100.00")]


def test_a_second_change_for_the_same_moment_replaces_the_first():
    material = asphalt()
    material.change_price("1990.50", NEW_YEAR, by="admin")
    material.change_price("1980.00", NEW_YEAR, by="admin")
    assert material.unit_cost_at(NEW_YEAR) == Decimal("1980.00")
    assert len(material.prices) == 2


def test_there_is_no_cost_before_the_first_price():
    with pytest.raises(NoPriceYet):
        asphalt().unit_cost_at(datetime(2025, 12, 31, tzinfo=CITY))
    with pytest.raises(InvalidCommand, match="no price before"):
        asphalt().change_price("1.00", datetime(2025, 6, 1, tzinfo=CITY), by="admin")


@pytest.mark.parametrize("cost", [1850.0, "12.345", "-1", "NaN", "Infinity", "abc", "1e9", True])
def test_a_unit_cost_is_exact_pesos_and_centavos(cost):
    with pytest.raises(InvalidCommand, match="unit cost"):
        Material.add("MEZ-ASF", "Mezcla", "m3", cost, NEW_YEAR, by="admin")


def test_an_unknown_unit_is_refused():
    with pytest.raises(InvalidCommand, match="unit is one of"):
        Material.add("MEZ-ASF", "Mezcla", "cubetas", "10.00", NEW_YEAR, by="admin")


def test_costs_round_half_up_to_the_centavo():
    assert money(Decimal("0.005")) == Decimal("0.01")
    assert money(Decimal("0.0049")) == Decimal("0.00")
    material = Material.add("TUB-PVC", "Tubo PVC 4 pulgadas", "m", "33.33", NEW_YEAR, by="admin")
    assert material.cost(Decimal("0.15"), NEW_YEAR) == Decimal("5.00")  # 4.9995 -> 5.00


# ---- the application, on the stores it runs on --------------------------------------------------

@pytest.fixture(params=["memory", "sqlite"])
def app(request, tmp_path):
    env = {} if request.param == "memory" else {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "crews.sqlite")}
    application = CrewsApplication(env=env)
    yield application
    application.close()


def test_a_crew_is_kept_with_every_step_it_took(app):
    app.create_crew("C-07", "Bacheo Centro", "obras_publicas", by="admin")
    app.join("C-07", "pedro", "Pedro Ramírez", by="sup")
    app.start_shift("C-07", MORNING, by="pedro")
    app.report_position("C-07", 20.59, -100.39, MORNING, by="pedro")
    crew = app.crew("C-07")
    assert (crew.availability, crew.position["lat"], crew.position["at"]) == (
        "available", 20.59, MORNING)


def test_a_code_is_taken_once(app):
    app.create_crew("C-07", "Bacheo Centro", "obras_publicas", by="admin")
    with pytest.raises(AlreadyExists):
        app.create_crew("C-07", "Otra", "obras_publicas", by="admin")
    app.add_material("MEZ-ASF", "Mezcla", "m3", "1850.00", NEW_YEAR, by="admin")
    with pytest.raises(AlreadyExists):
        app.add_material("MEZ-ASF", "Otra", "m3", "1.00", NEW_YEAR, by="admin")


def test_unknown_codes_are_not_found(app):
    with pytest.raises(CrewNotFound):
        app.join("C-99", "pedro", "Pedro", by="sup")
    with pytest.raises(MaterialNotFound):
        app.cost_of("NADA", "1", NEW_YEAR)


def test_a_materials_entry_is_priced_as_of_when_it_was_logged(app):
    app.add_material("MEZ-ASF", "Mezcla asfáltica en frío", "m3", "1850.00",
                     datetime(2026, 1, 1, tzinfo=CITY), by="admin")
    app.change_price("MEZ-ASF", "1990.50", NEW_YEAR, by="admin")
    december = app.cost_of("MEZ-ASF", "0.5", datetime(2026, 12, 31, 23, 59, tzinfo=CITY))
    january = app.cost_of("MEZ-ASF", "0.5", NEW_YEAR.astimezone(UTC))
    assert (december["unit_cost"], december["cost"]) == ("1850.00", "925.00")
    assert (january["unit_cost"], january["cost"]) == ("1990.50", "995.25")
    assert app.material("MEZ-ASF").unit_cost_at(NEW_YEAR) == Decimal("1990.50")  # reloaded


@pytest.mark.parametrize("amount", [0, "0", "-1", 0.5, "1e6", "NaN", None, "medio"])
def test_a_quantity_is_a_positive_decimal(app, amount):
    app.add_material("MEZ-ASF", "Mezcla", "m3", "1850.00", NEW_YEAR, by="admin")
    with pytest.raises(InvalidCommand, match="quantity"):
        app.cost_of("MEZ-ASF", amount, NEW_YEAR)


# ---- the read models ---------------------------------------------------------------------------

def test_the_views_show_each_crew_and_material_as_it_stands_and_a_rebuild_changes_nothing(
        tmp_path):
    from services.crews.read import CrewsProjector

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "crews.sqlite")}
    app = CrewsApplication(env=env)
    try:
        projector = CrewsProjector(app)
        app.create_crew("C-07", "Bacheo Centro", "obras_publicas", by="admin")
        app.create_crew("C-08", "Alumbrado Norte", "servicios_publicos", by="admin")
        app.join("C-07", "pedro", "Pedro Ramírez", by="sup")
        app.start_shift("C-07", MORNING, by="pedro")
        app.report_position("C-07", 20.59, -100.39, MORNING, by="pedro")
        app.add_material("MEZ-ASF", "Mezcla asfáltica en frío", "m3", "1850.00", MORNING,
                         by="admin")
        app.change_price("MEZ-ASF", "1990.50", NEW_YEAR, by="admin")
        assert projector.follower.catch_up() == 7
        crews = projector.crews("obras_publicas")
        assert crews == [{
            "code": "C-07", "name": "Bacheo Centro", "department": "obras_publicas",
            "availability": "available", "on_shift": True,
            "members": [{"member_id": "pedro", "name": "Pedro Ramírez"}],
            "position": {"lat": 20.59, "long": -100.39, "at": MORNING.isoformat()},
            "version": 4}]
        assert [c["code"] for c in projector.crews()] == ["C-07", "C-08"]
        assert projector.materials()[0]["prices"] == [
            {"effective_at": MORNING.isoformat(), "unit_cost": "1850.00"},
            {"effective_at": NEW_YEAR.isoformat(), "unit_cost": "1990.50"}]
        before = (projector.crews(), projector.materials())
        with app.sql.transaction() as tx:  # the whole log again, as a redelivery would
            projector.handle(tx, app.recorder.select_notifications(1, 100))
        assert (projector.crews(), projector.materials()) == before
    finally:
        app.close()
