"""Repair costs on PostgreSQL, the store production uses: the same events cost the same to the
centavo as on SQLite, a thousand entries of ten centavos add up to exactly 100.00, a replay adds
nothing, and the doors refuse what PostgreSQL could not even store (U+0000) with a 400."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from services.billing import repaircosts
from shared.chassis.auth import Auth
from shared.chassis.sqlstore import SqliteStore, SqlStore
from tests.unit.test_repair_costs import (
    BACHE,
    FUGA,
    LUZ,
    SUPERVISOR,
    Billing,
    Consumer,
    GivenStore,
    apply_all,
    consume_all,
    crew,
    history,
    item,
    opened,
    token,
    wire,
)
from tests.workers import Host, http_answer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg(pg_env):
    store = SqlStore.from_env(pg_env)
    assert store.dialect == "postgres"
    repaircosts.prepare(store)
    yield store
    store.close()


@pytest.fixture
def lite(tmp_path):
    store = SqliteStore(str(tmp_path / "billing.sqlite"))
    repaircosts.prepare(store)
    yield store
    store.close()


def test_the_same_events_cost_the_same_on_postgresql_as_on_sqlite(pg, lite):
    for store in (pg, lite):
        apply_all(store, history())
    assert repaircosts.report_cost(pg, BACHE)["total"] == Decimal("1509.01")
    for folio in (BACHE, FUGA, LUZ):
        assert repaircosts.report_cost(pg, folio) == repaircosts.report_cost(lite, folio)
    for by in repaircosts.BY:
        assert repaircosts.totals(pg, by) == repaircosts.totals(lite, by)
    assert repaircosts.totals(pg, "crew", department="agua_potable") == [
        {"key": "C-03", "reports": 1, "total": Decimal("100.00")},
        {"key": None, "reports": 1, "total": Decimal("30.50")}]


def test_a_thousand_entries_of_ten_centavos_are_exactly_one_hundred_pesos(pg):
    """0.1 is no binary number: added as floats, a thousand of them make 99.9999999999986."""
    folios = [f"QRO-2026-{n:06d}" for n in range(1, 5)]
    events = []
    for n, folio in enumerate(folios):  # two departments, four crews
        events += [opened(folio, "bache", ("obras_publicas", "agua_potable")[n % 2]),
                   wire(folio, 2, "assigned", SUPERVISOR, 1, crew_id=f"C-0{n + 1}")]
        # 250 entries of 0.1 × 1.00 each, in batches of at most 100 as tracking takes them.
        events += [wire(folio, version, "materials_logged", crew(f"C-0{n + 1}"), version,
                        items=[item("TORNILLO", 0.1, "1.00")] * size)
                   for version, size in ((3, 100), (4, 100), (5, 50))]
    apply_all(pg, events)
    costs = [repaircosts.report_cost(pg, folio) for folio in folios]
    assert [(len(cost["lines"]), cost["total"]) for cost in costs] == [
        (250, Decimal("25.00"))] * 4
    assert {line["cost"] for cost in costs for line in cost["lines"]} == {Decimal("0.10")}
    assert repaircosts.totals(pg, "department") == [
        {"key": "agua_potable", "reports": 2, "total": Decimal("50.00")},
        {"key": "obras_publicas", "reports": 2, "total": Decimal("50.00")}]
    assert repaircosts.totals(pg, "service_code") == [
        {"key": "bache", "reports": 4, "total": Decimal("100.00")}]
    assert repaircosts.totals(pg, "crew") == [
        {"key": f"C-0{n}", "reports": 1, "total": Decimal("25.00")} for n in range(1, 5)]


def test_a_replay_on_postgresql_adds_nothing(pg):
    events = history()
    apply_all(pg, [event for event in events for _ in range(2)])
    pg.run("UPDATE repair_costs SET version = 3 WHERE folio = %s", (BACHE,))
    apply_all(pg, [e for e in events if e.subject == BACHE and e.data["version"] > 3])
    cost = repaircosts.report_cost(pg, BACHE)
    assert (len(cost["lines"]), cost["total"], cost["unpriced"]) == (5, Decimal("1509.01"), 1)


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "batched"])
def test_the_ordered_consumer_costs_shuffled_deliveries_as_the_history(pg, lite, batched):
    events = history()
    apply_all(lite, events)
    deliveries = events + random.Random(7).sample(events, len(events) // 2)
    random.Random(7).shuffle(deliveries)
    consume_all(Consumer(pg, events), deliveries, batched)
    for by in repaircosts.BY:
        assert repaircosts.totals(pg, by) == repaircosts.totals(lite, by)


@pytest.mark.parametrize(("path", "status"), [
    (f"/costs/reports/{BACHE}", 200),
    ("/costs/reports/QRO-2026-999999", 404),
    ("/costs/reports/QRO%00", 400),
    ("/costs?by=crew&department=%00", 400),
    ("/costs?by=department&since=2026-03-05T00:00:00Z", 200),
])
def test_the_doors_on_postgresql(pg, path, status):
    apply_all(pg, history())
    host = Host(Billing, {}).provide(views=GivenStore(pg), auth=Auth()).start()
    try:
        answer = http_answer(host, "GET", path, token=token(host, "billing_clerk"))
        assert answer.status_code == status, answer.get_data(as_text=True)
    finally:
        host.stop()
