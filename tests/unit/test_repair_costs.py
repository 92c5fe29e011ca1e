"""What each repair cost: the materials a report's crews logged, as tracking publishes them, added
up to the centavo per report and per department, category and crew; an entry crews could not
price is counted, not guessed; a replayed event adds nothing; and the doors that read it all."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from nameko.extensions import DependencyProvider

from services.billing import repaircosts
from services.billing.costdoors import CONSUMER_NAME, RepairCostDoors
from shared.chassis.auth import Auth, mint_token
from shared.chassis.sqlstore import SqliteStore, SqlStore
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import dump_data, event_type
from tests.support import deliver_in_batches
from tests.workers import Host, http_answer, rpc_reply

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BACHE, FUGA, LUZ = "QRO-2026-000001", "QRO-2026-000002", "QRO-2026-000003"
OPERATOR = {"id": "ana", "role": "operator", "channel": "phone_070", "crew_id": None}
SUPERVISOR = {"id": "lucia", "role": "supervisor", "channel": "staff", "crew_id": None}


def crew(code: str) -> dict[str, Any]:
    return {"id": f"{code.lower()}-pedro", "role": "crew", "channel": "field", "crew_id": code}


def wire(folio: str, version: int, name: str, actor: dict[str, Any], minutes: float = 0,
         **data: Any) -> CloudEvent:
    """A report event as tracking publishes it, through JSON: a quantity arrives as a float."""
    body = dump_data(name, {"folio": folio, "version": version, "actor": actor,
                            "step_id": None, **data}, validate=True)
    event = CloudEvent(id=f"{folio}:{version}", source="/expediente/tracking",
                       type=event_type(name), subject=folio,
                       time=START + timedelta(minutes=minutes), data=body,
                       extensions={"streamversion": version})
    return CloudEvent.from_json(event.to_json())


def opened(folio: str, service_code: str, department: str, minutes: float = 0) -> CloudEvent:
    return wire(folio, 1, "opened", OPERATOR, minutes, service_code=service_code,
                service_name=service_code.title(), department=department,
                description="Reporte de prueba", location={"lat": 20.59, "long": -100.39},
                attributes={}, media_urls=[], channel="phone_070", due_at=None)


def item(code: str, quantity: float, unit_cost: str | None, cost: str | None = None
         ) -> dict[str, Any]:
    return {"code": code, "quantity": quantity, "unit": "pza", "description": code.title(),
            "unit_cost": unit_cost, "cost": cost}


def history() -> list[CloudEvent]:
    """A pothole worked by C-01, then by C-02 after a reassignment; a leak opened as public
    services and triaged to water, worked by C-03, closed, reopened and patched by a
    supervisor; a street light never worked on."""
    day = 24 * 60
    return [
        opened(BACHE, "bache", "obras_publicas"),
        wire(BACHE, 2, "assigned", SUPERVISOR, 5, crew_id="C-01"),
        wire(BACHE, 3, "crew_arrived", crew("C-01"), 30),
        wire(BACHE, 4, "materials_logged", crew("C-01"), 40, items=[
            item("MEZ-ASF", 0.5, "1850.00", "925.00"),
            # 1.005 × 1.00 is 1.005, half up 1.01; the float 1.005 is 1.00499999… (1.00).
            item("TUBO", 1.005, "1.00"),
            item("ARENA", 2.0, None)]),  # not in crews' catalog: no price
        wire(BACHE, 5, "materials_logged", SUPERVISOR, 45, items=[
            item("SENAL", 1.0, "120.50", "120.50")]),
        wire(BACHE, 6, "assigned", SUPERVISOR, 50, crew_id="C-02"),
        wire(BACHE, 7, "materials_logged", crew("C-02"), 70, items=[
            item("MEZ-ASF", 0.25, "1850.00", "462.50")]),
        opened(FUGA, "fuga", "servicios_publicos", 60),
        wire(FUGA, 2, "triaged", SUPERVISOR, 70, department="agua_potable",
             priority="high", service_code="fuga_agua"),
        wire(FUGA, 3, "assigned", SUPERVISOR, 80, crew_id="C-03"),
        wire(FUGA, 4, "materials_logged", crew("C-03"), 8 * day,
             occurred_at=datetime.fromisoformat("2026-03-10T09:00:00-06:00"), items=[  # offline
                 item("TUBO-PVC", 3.0, "33.33", "99.99"),
                 item("CODO", 0.1, "0.05")]),  # 0.005, half up: 0.01
        wire(FUGA, 5, "closed", SUPERVISOR, 8 * day + 60, resolution="fixed", notes="Listo"),
        wire(FUGA, 6, "reopened", SUPERVISOR, 9 * day, reason="Sigue goteando"),
        wire(FUGA, 7, "materials_logged", SUPERVISOR, 9 * day + 30, items=[
            item("CINTA", 2.0, "15.25", "30.50")]),  # no crew holds the report now
        opened(LUZ, "alumbrado", "servicios_publicos", 90),
    ]


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(str(tmp_path / "billing.sqlite"))
    repaircosts.prepare(store)
    yield store
    store.close()


def apply_all(store: SqlStore, events: list[CloudEvent]) -> None:
    for event in events:
        with store.transaction() as tx:
            repaircosts.apply(tx, event)


@pytest.fixture
def costed(store):
    apply_all(store, history())
    return store


def totals(store: SqlStore, by: str, **window: Any) -> dict[Any, tuple[int, Decimal]]:
    return {row["key"]: (row["reports"], row["total"])
            for row in repaircosts.totals(store, by, **window)}


# ---- a report's cost ---------------------------------------------------------------------------


def test_a_repair_costs_what_its_crews_logged_to_the_centavo(costed):
    cost = repaircosts.report_cost(costed, BACHE)
    assert cost["total"] == Decimal("1509.01") and cost["currency"] == "MXN"
    assert [(line["code"], line["quantity"], line["unit_cost"], line["cost"])
            for line in cost["lines"]] == [
        ("MEZ-ASF", Decimal("0.5"), Decimal("1850.00"), Decimal("925.00")),
        ("TUBO", Decimal("1.005"), Decimal("1.00"), Decimal("1.01")),
        ("ARENA", Decimal("2.0"), None, None),
        ("SENAL", Decimal("1.0"), Decimal("120.50"), Decimal("120.50")),
        ("MEZ-ASF", Decimal("0.25"), Decimal("1850.00"), Decimal("462.50"))]
    assert cost["total"] == sum(line["cost"] for line in cost["lines"] if line["cost"])
    assert all(isinstance(line["quantity"], Decimal) for line in cost["lines"])
    leak = repaircosts.report_cost(costed, FUGA)
    assert [line["cost"] for line in leak["lines"]] == [
        Decimal("99.99"), Decimal("0.01"), Decimal("30.50")]
    assert leak["total"] == Decimal("130.50")


def test_entries_crews_could_not_price_are_counted_not_guessed(costed):
    cost = repaircosts.report_cost(costed, BACHE)
    assert cost["unpriced"] == 1
    unpriced = [line for line in cost["lines"] if line["unit_cost"] is None]
    assert [(line["code"], line["cost"]) for line in unpriced] == [("ARENA", None)]
    assert repaircosts.report_cost(costed, FUGA)["unpriced"] == 0


def test_the_events_own_cost_is_what_crews_priced(store):
    apply_all(store, [opened(BACHE, "bache", "obras_publicas"),
                      wire(BACHE, 2, "materials_logged", crew("C-01"), 5, items=[
                          item("MEZ-ASF", 0.5, "1850.00", "900.00")])])  # a negotiated price
    assert repaircosts.report_cost(store, BACHE)["total"] == Decimal("900.00")


def test_a_report_with_no_materials_costs_nothing_yet(costed):
    lamp = repaircosts.report_cost(costed, LUZ)
    assert (lamp["total"], lamp["lines"], lamp["unpriced"]) == (Decimal("0.00"), [], 0)
    assert lamp["department"] == "servicios_publicos" and lamp["crew_id"] is None


def test_a_folio_billing_never_heard_of_is_not_found(costed):
    with pytest.raises(repaircosts.RepairNotCosted):
        repaircosts.report_cost(costed, "QRO-2026-999999")


# ---- who pays ----------------------------------------------------------------------------------


def test_each_entry_is_charged_to_the_crew_that_logged_it(costed):
    cost = repaircosts.report_cost(costed, BACHE)
    # A supervisor logging for the report charges the crew assigned then (C-01).
    assert [line["crew_id"] for line in cost["lines"]] == ["C-01"] * 4 + ["C-02"]
    assert cost["crew_id"] == "C-02"
    leak = repaircosts.report_cost(costed, FUGA)
    # Reopened, the leak lost its crew: the supervisor's patch is charged to no crew.
    assert leak["crew_id"] is None
    assert [line["crew_id"] for line in leak["lines"]] == ["C-03", "C-03", None]


def test_triage_moves_the_report_and_its_cost_to_the_new_department(costed):
    leak = repaircosts.report_cost(costed, FUGA)
    assert (leak["department"], leak["service_code"]) == ("agua_potable", "fuga_agua")
    assert "servicios_publicos" not in {
        key for key, (_, total) in totals(costed, "department").items() if total}


def test_a_line_is_logged_at_the_crews_time_in_utc(costed):
    lines = repaircosts.report_cost(costed, FUGA)["lines"]
    assert lines[0]["logged_at"] == "2026-03-10T15:00:00.000000+00:00"
    assert lines[2]["logged_at"] == (START + timedelta(days=9, minutes=30)).isoformat(
        timespec="microseconds")


# ---- once, and only once -----------------------------------------------------------------------


def test_an_event_applied_twice_adds_nothing(store):
    events = history()
    apply_all(store, [event for event in events for _ in range(2)])  # each delivered twice
    apply_all(store, events)  # and the whole history once more
    assert repaircosts.report_cost(store, BACHE)["total"] == Decimal("1509.01")
    assert len(repaircosts.report_cost(store, BACHE)["lines"]) == 5
    assert totals(store, "department")["agua_potable"] == (1, Decimal("130.50"))


def test_a_replayed_materials_event_cannot_double_its_lines_even_if_the_version_was_lost(costed):
    costed.run("UPDATE repair_costs SET version = 3 WHERE folio = %s", (BACHE,))
    apply_all(costed, [e for e in history() if e.subject == BACHE and e.data["version"] > 3])
    cost = repaircosts.report_cost(costed, BACHE)
    assert (len(cost["lines"]), cost["total"]) == (5, Decimal("1509.01"))


def test_an_old_triage_replayed_late_does_not_move_the_report_back(costed):
    apply_all(costed, [wire(FUGA, 2, "triaged", SUPERVISOR, department="servicios_publicos",
                            priority="low", service_code="fuga")])
    assert repaircosts.report_cost(costed, FUGA)["department"] == "agua_potable"


def test_other_events_change_nothing_and_none_comes_before_the_opening(store):
    apply_all(store, [wire(BACHE, 2, "comment_added", OPERATOR, visibility="internal",
                           text=None)])
    with pytest.raises(repaircosts.RepairNotCosted):
        repaircosts.report_cost(store, BACHE)
    with pytest.raises(repaircosts.NotOpenedYet), store.transaction() as tx:
        repaircosts.apply(tx, wire(BACHE, 2, "materials_logged", crew("C-01"),
                                   items=[item("TUBO", 1.0, "1.00")]))


class Consumer:
    """What the chassis' ordered consumer needs of the service: the store, and tracking's
    answer for a report's events after a version (here: the recorded history)."""

    def __init__(self, store: SqlStore, events: list[CloudEvent]) -> None:
        self.views = store
        self.events = events

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.events
                if e.subject == folio and e.data["version"] > after_version]


def consume_all(service: Consumer, deliveries: list[CloudEvent], batched: bool) -> None:
    """Through billing's consumer method: one event at a time, or in batches as the entrypoint
    takes them under load."""
    if batched:
        deliver_in_batches(RepairCostDoors.consume_report_event, service, deliveries,
                           CONSUMER_NAME, seed=len(deliveries))
    else:
        for event in deliveries:
            RepairCostDoors.consume_report_event(service, event, CONSUMER_NAME)


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "batched"])
@pytest.mark.parametrize("seed", range(3))
def test_shuffled_repeated_deliveries_cost_what_the_history_in_order_costs(costed, tmp_path,
                                                                           seed, batched):
    """Through the chassis' ordered consumer: a report's later event first makes it fetch the
    missing ones from tracking; a delivery of what it applied already is old news."""
    events = history()
    deliveries = events + random.Random(seed).sample(events, len(events) // 2)
    random.Random(seed).shuffle(deliveries)
    store = SqliteStore(str(tmp_path / "shuffled.sqlite"))
    repaircosts.prepare(store)
    consume_all(Consumer(store, events), deliveries, batched)
    for folio in (BACHE, FUGA, LUZ):
        assert repaircosts.report_cost(store, folio) == repaircosts.report_cost(costed, folio)
    for by in repaircosts.BY:
        assert repaircosts.totals(store, by) == repaircosts.totals(costed, by)
    store.close()


# ---- totals ------------------------------------------------------------------------------------


def test_totals_by_department_category_and_crew_are_exact(costed):
    assert totals(costed, "department") == {"obras_publicas": (1, Decimal("1509.01")),
                                            "agua_potable": (1, Decimal("130.50"))}
    assert totals(costed, "service_code") == {"bache": (1, Decimal("1509.01")),
                                              "fuga_agua": (1, Decimal("130.50"))}
    assert totals(costed, "crew") == {"C-01": (1, Decimal("1046.51")),
                                      "C-02": (1, Decimal("462.50")),
                                      "C-03": (1, Decimal("100.00")),
                                      None: (1, Decimal("30.50"))}
    grand = Decimal("1639.51")
    for by in repaircosts.BY:
        assert sum(total for _, total in totals(costed, by).values()) == grand
    assert [row["key"] for row in repaircosts.totals(costed, "crew")] == [
        "C-01", "C-02", "C-03", None]  # the largest first


def test_totals_of_a_window_count_the_materials_logged_in_it(costed):
    march_5 = datetime(2026, 3, 5, tzinfo=UTC)
    assert totals(costed, "department", since=march_5) == {
        "agua_potable": (1, Decimal("130.50"))}
    assert totals(costed, "department", until=march_5) == {
        "obras_publicas": (1, Decimal("1509.01"))}
    assert totals(costed, "crew", since=march_5, until=datetime(2026, 3, 11, tzinfo=UTC)) == {
        "C-03": (1, Decimal("100.00"))}
    # A window holding everything adds up as the reports' own totals do.
    everything = {"since": START - timedelta(days=1), "until": START + timedelta(days=30)}
    for by in ("department", "service_code"):
        assert totals(costed, by, **everything) == totals(costed, by)


def test_totals_of_one_department(costed):
    assert totals(costed, "crew", department="agua_potable") == {
        "C-03": (1, Decimal("100.00")), None: (1, Decimal("30.50"))}
    assert totals(costed, "department", department="obras_publicas") == {
        "obras_publicas": (1, Decimal("1509.01"))}


def test_totals_are_by_department_category_or_crew_only(costed):
    with pytest.raises(ValueError):
        repaircosts.totals(costed, "folio")


# ---- the doors ---------------------------------------------------------------------------------


class GivenStore(DependencyProvider):
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def get_dependency(self, worker_ctx: Any) -> SqlStore:
        return self.store


class Billing(RepairCostDoors):
    """The mixin mounted as BillingService will mount it."""

    name = "billing"
    views = GivenStore(None)  # type: ignore[arg-type]
    auth = Auth()


@pytest.fixture
def host(costed):
    host = Host(Billing, {}).provide(views=GivenStore(costed), auth=Auth()).start()
    yield host
    host.stop()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def test_a_billing_clerk_reads_a_reports_cost(host):
    answer = http_answer(host, "GET", f"/costs/reports/{BACHE}",
                         token=token(host, "billing_clerk"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert (body["total"], body["currency"], body["unpriced"]) == ("1509.01", "MXN", 1)
    assert body["lines"][1] == {"code": "TUBO", "description": "Tubo", "unit": "pza",
                                "quantity": "1.005", "unit_cost": "1.00", "cost": "1.01",
                                "crew_id": "C-01", "logged_at": body["lines"][1]["logged_at"],
                                "version": 4}
    assert rpc_reply(host, "repair_cost", BACHE, token=token(host, "auditor")) == body


def test_the_operations_side_reads_the_totals(host):
    answer = http_answer(host, "GET", "/costs?by=crew", token=token(host, "supervisor"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["total"] == "1639.51" and body["by"] == "crew"
    assert body["totals"][0] == {"key": "C-01", "reports": 1, "total": "1046.51"}
    window = http_answer(host, "GET", "/costs", token=token(host, "operator"), query_string={
        "by": "department", "since": "2026-03-05T00:00:00-06:00"}).get_json()
    assert window["totals"] == [{"key": "agua_potable", "reports": 1, "total": "130.50"}]
    assert window["since"].startswith("2026-03-05T00:00:00")
    reply = rpc_reply(host, "repair_costs", "service_code", token=token(host, "billing_clerk"))
    assert [(row["key"], row["total"]) for row in reply["totals"]] == [
        ("bache", "1509.01"), ("fuga_agua", "130.50")]


def test_a_department_supervisor_sees_only_their_departments_costs(host):
    mine = token(host, "supervisor", department="agua_potable")
    body = http_answer(host, "GET", "/costs?by=crew", token=mine).get_json()
    assert body["department"] == "agua_potable" and body["total"] == "130.50"
    assert http_answer(host, "GET", f"/costs/reports/{FUGA}", token=mine).status_code == 200
    assert http_answer(host, "GET", f"/costs/reports/{BACHE}", token=mine).status_code == 403
    assert http_answer(host, "GET", "/costs?by=crew&department=obras_publicas",
                       token=mine).status_code == 403


@pytest.mark.parametrize(("path", "role", "status", "field"), [
    (f"/costs/reports/{BACHE}", None, 401, "authorization"),
    (f"/costs/reports/{BACHE}", "crew", 403, "authorization"),
    ("/costs?by=crew", "system", 403, "authorization"),
    ("/costs/reports/QRO-2026-999999", "billing_clerk", 404, "folio"),
    ("/costs/reports/" + "Q" * 40, "billing_clerk", 400, "folio"),
    ("/costs/reports/QRO%00", "billing_clerk", 400, "folio"),
    ("/costs", "billing_clerk", 400, "by"),
    ("/costs?by=folio", "billing_clerk", 400, "by"),
    ("/costs?by=crew&since=2026-03-05", "billing_clerk", 400, "since"),
    ("/costs?by=crew&since=1900-01-01T00:00:00Z", "billing_clerk", 400, "since"),
    ("/costs?by=crew&since=2026-03-05T00:00:00Z&until=2026-03-01T00:00:00Z", "billing_clerk",
     400, "until"),
    ("/costs?by=crew&page=2", "billing_clerk", 400, "page"),
])
def test_bad_or_unauthorised_reads_get_a_clear_answer(host, path, role, status, field):
    answer = http_answer(host, "GET", path, token=token(host, role) if role else None)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert field in answer.get_json()["error"]["fields"]


def test_rpc_readers_get_the_same_codes(host):
    from shared.contracts.errors import WireError

    with pytest.raises(WireError) as missing:
        rpc_reply(host, "repair_cost", "QRO-2026-999999", token=token(host, "billing_clerk"))
    assert missing.value.code == "not_found"
    with pytest.raises(WireError) as invalid:
        rpc_reply(host, "repair_costs", "folio", token=token(host, "billing_clerk"))
    assert invalid.value.code == "invalid_input" and "by" in invalid.value.fields
    with pytest.raises(WireError) as refused:
        rpc_reply(host, "repair_costs", "crew", token=token(host, "crew", crew_id="C-01"))
    assert refused.value.code == "forbidden"
