"""Crews and materials on PostgreSQL, the store production uses: supervisors working on one crew
at once all get their change in, and a price history survives a reload exactly."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import eventlet
import pytest

from services.crews.application import AlreadyExists, CrewsApplication

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CITY = ZoneInfo("America/Mexico_City")


@pytest.fixture
def app(pg_env):
    application = CrewsApplication(env=pg_env)
    yield application
    application.close()


def test_supervisors_adding_members_at_once_all_get_them_in(app):
    app.create_crew("C-07", "Bacheo Centro", "obras_publicas", by="admin")
    pool = eventlet.GreenPool(8)
    list(pool.imap(lambda n: app.join("C-07", f"m{n}", f"Integrante {n}", by=f"sup{n % 2}"),
                   range(8)))
    crew = app.crew("C-07")
    assert sorted(crew.members) == [f"m{n}" for n in range(8)]
    assert crew.version == 9  # created + eight joins, none lost to a conflict


def test_a_price_history_reloads_exactly(app):
    app.add_material("MEZ-ASF", "Mezcla asfáltica en frío", "m3", "1850.00",
                     datetime(2026, 1, 1, tzinfo=CITY), by="admin")
    app.change_price("MEZ-ASF", "1990.50", datetime(2027, 1, 1, tzinfo=CITY), by="admin")
    reloaded = CrewsApplication(env=app.env)
    try:
        material = reloaded.material("MEZ-ASF")
        assert [cost for _, cost in material.prices] == [Decimal("1850.00"), Decimal("1990.50")]
        assert reloaded.cost_of("MEZ-ASF", "0.5", datetime(2027, 1, 1, tzinfo=CITY))["cost"] == (
            "995.25")
        with pytest.raises(AlreadyExists):
            reloaded.add_material("MEZ-ASF", "Otra", "m3", "1.00",
                                  datetime(2027, 1, 1, tzinfo=CITY), by="admin")
    finally:
        reloaded.close()
