"""The example service of docs/new-service.md, the bulletin, without a broker: its consumer
counts each report event once, its HTTP and RPC doors answer by role and code, `nameko run`
finds one service in it, and every block of code the page quotes is the example's source."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from nameko.cli.run import import_service

from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.errors import WireError
from tests.example_service import tally
from tests.example_service.service import BulletinService
from tests.support import ROOT
from tests.workers import Call, Host, http_answer, rpc_reply

EXAMPLE = ROOT / "tests" / "example_service"
PAGE = ROOT / "docs" / "new-service.md"
QUOTE = re.compile(r"<!-- (?P<path>[\w./-]+) -->\n```\w*\n(?P<code>.*?)```", re.DOTALL)


def report_event(name: str, folio: str, **data: object) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/expediente/tracking",
                      type=f"mx.expediente.report.{name}", subject=folio,
                      time=datetime.now(UTC), data={"folio": folio, **data})


@pytest.fixture
def host(tmp_path):
    config = load_config(EXAMPLE / "config.yaml", SQLITE_DBNAME=str(tmp_path / "bulletin.db"))
    host = Host(BulletinService, config).provide(store=tally.TallyStore(), auth=Auth())
    yield host
    host.stop()


def hear(host, event: CloudEvent) -> bool:
    """The consumer's method as its entrypoint calls it: True if the event was applied."""
    return host.worker(Call()).handle_report_event(event, "bulletin.handle_report_event")


def token(host, role: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config)


def test_each_report_event_is_counted_once_for_its_category(host):
    opened = report_event("opened", "QRO-2026-000001", service_code="bache")
    assert [hear(host, e) for e in (opened, opened)] == [True, False]  # a redelivery: no count
    hear(host, report_event("opened", "QRO-2026-000002", service_code="bache"))
    hear(host, report_event("closed", "QRO-2026-000001", resolution="fixed"))
    answer = rpc_reply(host, "tally", "bache", token=token(host, "auditor"))
    assert answer == {"service_code": "bache", "opened": 2, "closed": 1}


def test_a_closing_heard_before_its_opening_fails_and_is_left_for_a_retry(host):
    with pytest.raises(tally.NotOpenedYet):
        hear(host, report_event("closed", "QRO-2026-000009", resolution="fixed"))
    hear(host, report_event("opened", "QRO-2026-000009", service_code="luminaria"))
    assert rpc_reply(host, "tally", "luminaria", token=token(host, "supervisor"))["opened"] == 1


@pytest.mark.parametrize(("role", "status", "code"), [
    (None, 401, "unauthenticated"), ("operator", 403, "forbidden"),
    ("supervisor", 404, "not_found")])
def test_the_tally_door_refuses_by_role_and_code(host, role, status, code):
    answer = http_answer(host, "GET", "/bulletin/ovni", token=role and token(host, role))
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (status, code)
    with pytest.raises(WireError) as refused:
        rpc_reply(host, "tally", "ovni", token=role and token(host, role))
    assert (refused.value.status, refused.value.code) == (status, code)


def test_nameko_run_finds_exactly_one_service_in_the_wiring_module():
    assert import_service("tests.example_service.service") == [BulletinService]
    assert len((EXAMPLE / "service.py").read_text().splitlines()) < 60


def test_every_block_the_page_quotes_is_the_source_it_names():
    quotes = QUOTE.findall(PAGE.read_text())
    assert {path for path, _ in quotes} >= {
        f"tests/example_service/{name}" for name in ("config.yaml", "service.py", "doors.py",
                                                     "tally.py")}
    for path, code in quotes:
        source = (ROOT / path).read_text()
        assert f"\n{code}" in f"\n{source}", f"docs/new-service.md quotes {path} as it is not"
    whole = [code for path, code in quotes if path == "tests/example_service/service.py"]
    assert (EXAMPLE / "service.py").read_text() in whole  # the wiring, all of it
