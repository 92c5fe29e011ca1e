"""Crews' doors refuse hostile input on PostgreSQL, the store production uses (it refuses what
SQLite keeps, U+0000 for one): every body of the entrypoint tests' HOSTILE list, every read of
the work-list tests' HOSTILE_READS and every demo sign-in of HOSTILE_DEMO is a 400 that writes
nothing, on crews' real entrypoints over a PostgreSQL event store."""

from __future__ import annotations

import pytest
from nameko.dependency_providers import Config

from services.crews.dependencies import CrewsRuntime
from services.crews.service import CrewsService
from shared.chassis.auth import Auth
from shared.chassis.config import load_config
from shared.chassis.runtime import RuntimeStore
from tests.support import ROOT
from tests.unit.test_crews_entrypoints import HOSTILE, formed, token
from tests.unit.test_crews_webapp import HOSTILE_DEMO
from tests.unit.test_crews_worklists import HOSTILE_READS
from tests.workers import Host, http_answer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_host(pg_env):
    config = load_config(ROOT / "services/crews/config.yaml", PROJECTION_COALESCE=0,
                         LEADERSHIP_POLL_INTERVAL=0.1, **pg_env)
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), views=RuntimeStore(),
                                              auth=Auth(), config=Config()).start()
    formed(host)
    formed(host, code="C-01")  # the demo sign-ins' crew, with Pedro
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


@pytest.mark.parametrize(("path", "role"), HOSTILE_READS)
def test_a_bad_work_list_read_is_a_400_on_postgresql(pg_host, path, role):
    answer = http_answer(pg_host, "GET", path, token=token(pg_host, role))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]


@pytest.mark.parametrize(("form", "field"), HOSTILE_DEMO)
def test_a_bad_demo_sign_in_is_a_400_that_mints_nothing_on_postgresql(pg_host, form, field):
    answer = http_answer(pg_host, "POST", "/app/demo", data=form)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "Location" not in answer.headers and field in answer.get_data(as_text=True)
