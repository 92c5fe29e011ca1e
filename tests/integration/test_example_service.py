"""The example service of docs/new-service.md, the bulletin, running for real: its own config.yaml
in a nameko container on a RabbitMQ virtual host of the module's own, hearing report events
published on the events exchange and answering over HTTP and RPC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared.chassis.auth import mint_token
from shared.chassis.config import load_config
from shared.chassis.outbox import Publisher
from shared.contracts.cloudevents import CloudEvent
from tests.example_service.service import BulletinService
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.integration
EXCHANGE = "expediente.events"


@pytest.fixture(scope="module")
def bulletin(tmp_path_factory, private_amqp_uri):
    port = free_port()
    config = load_config(ROOT / "tests/example_service/config.yaml", AMQP_URI=private_amqp_uri,
                         WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                         SQLITE_DBNAME=str(tmp_path_factory.mktemp("bulletin") / "b.db"))
    container = ServiceContainer(BulletinService, config)
    container.start()
    yield f"http://127.0.0.1:{port}", config
    with eventlet.Timeout(20):
        container.stop()


def publish(amqp_uri: str, name: str, folio: str, **data: object) -> None:
    """What tracking's outbox relay does with a stored event (confirmed by RabbitMQ)."""
    publisher = Publisher(amqp_uri, EXCHANGE)
    try:
        publisher.publish([CloudEvent(
            id=str(uuid.uuid4()), source="/expediente/tracking",
            type=f"mx.expediente.report.{name}", subject=folio, time=datetime.now(UTC),
            data={"folio": folio, **data})])
    finally:
        publisher.close()


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'ana-{role}', (role,))}"}


def tally(url: str, code: str) -> dict | None:
    answer = requests.get(f"{url}/bulletin/{code}", headers=auth("supervisor"), timeout=10)
    return answer.json() if answer.status_code == 200 else None


def test_reports_published_on_the_exchange_are_counted_and_read_over_http(bulletin):
    url, config = bulletin
    for folio in ("QRO-2026-000001", "QRO-2026-000002"):
        publish(config["AMQP_URI"], "opened", folio, service_code="bache")
    publish(config["AMQP_URI"], "closed", "QRO-2026-000001", resolution="fixed")
    wait_for(lambda: tally(url, "bache") == {"service_code": "bache", "opened": 2, "closed": 1},
             message="the bulletin's tally of potholes")
    refused = requests.get(f"{url}/bulletin/bache", headers=auth("operator"), timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


def test_a_closing_heard_first_is_retried_until_its_opening_is_in(bulletin):
    url, config = bulletin
    publish(config["AMQP_URI"], "closed", "QRO-2026-000050", resolution="fixed")
    publish(config["AMQP_URI"], "opened", "QRO-2026-000050", service_code="fuga_agua")
    wait_for(lambda: (tally(url, "fuga_agua") or {}).get("closed") == 1,
             message="the closing, after its retry")


def test_the_tally_by_rpc_with_the_callers_token(bulletin):
    url, config = bulletin
    publish(config["AMQP_URI"], "opened", "QRO-2026-000070", service_code="alumbrado_publico")
    wait_for(lambda: tally(url, "alumbrado_publico"), message="the opening counted")
    token = mint_token("ana-auditor", ("auditor",))
    with ClusterRpcProxy(config, context_data={"authorization": f"Bearer {token}"},
                         timeout=20) as rpc:
        assert rpc.bulletin.tally("alumbrado_publico")["opened"] == 1
        with pytest.raises(RemoteError):
            rpc.bulletin.tally("ovni")


def test_the_chassis_doors_answer(bulletin):
    url, _ = bulletin
    assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{url}/readyz", timeout=10).json() == {"ready": True, "store": True}
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert "/bulletin/{service_code}" in document["paths"]
    assert "expediente_request_duration_seconds" in requests.get(f"{url}/metrics",
                                                                 timeout=10).text
