"""Intake reads tracking's Open311 data over RPC with no token; bad filters name their field."""

from __future__ import annotations

import pytest
from nameko.exceptions import RemoteError, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from tests.stack import create_vhost, delete_vhost
from tests.support import ServiceProcess, bearer, wait_for

pytestmark = pytest.mark.e2e

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache frente a la escuela", "location": {"lat": 20.5931, "long": -100.392},
    "media_urls": ["https://fotos.example/bache.jpg"], "channel": "phone_070", "sla_hours": 72,
}
INTERNAL_NOTE = "Factura 88 pendiente con el proveedor"


@pytest.fixture(scope="module")
def amqp(tmp_path_factory):
    """Tracking alone on a RabbitMQ virtual host of its own (its RPC queue is shared by name)."""
    vhost = create_vhost()
    uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    tracking = ServiceProcess("tracking", {
        "AMQP_URI": uri, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "TRACKING_SQLITE_DBNAME": str(tmp_path_factory.mktemp("tracking") / "t.sqlite"),
    }).start()
    # /healthz answers once the web server is up; its RPC queue may be bound a moment later.
    with ClusterRpcProxy({"AMQP_URI": uri}, timeout=20) as rpc:
        wait_for(lambda: _answers(rpc), timeout=30, message="tracking's RPC queue")
    yield {"AMQP_URI": uri}
    tracking.stop()
    delete_vhost(vhost)


def _answers(rpc: ClusterRpcProxy) -> bool:
    try:
        rpc.tracking.open311_requests({})
    except UnknownService:
        return False
    return True


def test_intake_reads_public_requests_and_updates_without_a_token(amqp):
    with ClusterRpcProxy(amqp, context_data=bearer("operator"), timeout=20) as rpc:
        opened = rpc.tracking.open_report(POTHOLE)
    folio = opened["folio"]
    with ClusterRpcProxy(amqp, context_data=bearer("supervisor"), timeout=20) as rpc:
        rpc.tracking.run_command("add_comment", folio,
                                 {"text": INTERNAL_NOTE, "visibility": "internal"})
        rpc.tracking.run_command("close_report", folio, {"resolution": "fixed"})

    with ClusterRpcProxy(amqp, timeout=20) as rpc:  # no token at all
        requests = rpc.tracking.open311_requests({"service_code": "bache,luminaria",
                                                  "status": "closed"})
        updates = rpc.tracking.open311_updates({"since": opened["opened_at"]})
        with pytest.raises(RemoteError) as refused:
            rpc.tracking.open311_updates({"since": "ayer", "limit": 5000})

    assert [r["folio"] for r in requests] == [folio]
    assert requests[0]["status_notes"] == "Cerrado: Resuelto"
    assert requests[0]["media_url"] == POTHOLE["media_urls"][0]
    assert [u["description"] for u in updates] == ["Reporte cerrado: Resuelto"]
    assert updates[0]["service_request_id"] == folio and updates[0]["status"] == "closed"
    assert INTERNAL_NOTE not in repr((requests, updates))
    assert refused.value.exc_type == "ValidationError"
    assert "since" in refused.value.value and "limit" in refused.value.value
