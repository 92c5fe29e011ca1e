"""Crews' doors refuse hostile input on PostgreSQL, the store production uses (it refuses what
SQLite keeps, U+0000 for one): every body of the entrypoint tests' HOSTILE list is a 400 that
writes nothing, on crews' real entrypoints over a PostgreSQL event store."""

from __future__ import annotations

import pytest

from services.crews.dependencies import CrewsRuntime
from services.crews.service import CrewsService
from shared.chassis.auth import Auth
from shared.chassis.config import load_config
from tests.support import ROOT
from tests.unit.test_crews_entrypoints import HOSTILE, formed, token
from tests.workers import Host, http_answer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_host(pg_env):
    config = load_config(ROOT / "services/crews/config.yaml", PROJECTION_COALESCE=0,
                         LEADERSHIP_POLL_INTERVAL=0.1, **pg_env)
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), auth=Auth()).start()
    formed(host)
    yield host
    host.stop()


@pytest.mark.parametrize(("path", "body"), HOSTILE)
def test_bad_input_is_a_400_that_writes_nothing_on_postgresql(pg_host, path, body):
    stored = pg_host.providers["crews"].app.recorder.max_notification_id()
    answer = http_answer(pg_host, "POST", path, token=token(pg_host, "admin"), json=body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]
    assert pg_host.providers["crews"].app.recorder.max_notification_id() == stored


def test_the_store_under_these_doors_is_postgresql(pg_host):
    assert type(pg_host.providers["crews"].app.recorder).__module__.startswith(
        ("eventsourcing.postgres", "shared.chassis.esrecorder"))
