"""Upload quotas and tickets are counted in intake's database, so that replicas count together:
two replicas (two stores on one database) taking photos at once never let one past the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from services.intake.store import IntakeStore
from shared.chassis.sqlstore import SqlStore

pytestmark = pytest.mark.integration


@pytest.fixture
def replicas(store_env):
    stores = [IntakeStore(SqlStore.from_env(store_env)) for _ in range(2)]
    yield stores
    for store in stores:
        store.sql.close()


def at_once(calls) -> list[bool]:
    pool = eventlet.GreenPool(len(calls))
    return list(pool.imap(lambda call: call(), calls))


def test_replicas_taking_photos_at_once_never_pass_the_hourly_limit(replicas):
    window = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    calls = [lambda store=replicas[n % 2]: store.take_allowance("photos:203.0.113.7", window, 7)
             for n in range(20)]
    assert sum(at_once(calls)) == 7
    assert replicas[0].take_allowance("photos:203.0.113.8", window, 7)  # another client


def test_a_ticket_used_from_two_replicas_at_once_takes_its_photos_and_no_more(replicas):
    expires = datetime.now(UTC) + timedelta(hours=1)
    calls = [lambda store=replicas[n % 2]: store.use_ticket("ticket-1", expires, 5)
             for n in range(12)]
    assert sum(at_once(calls)) == 5
