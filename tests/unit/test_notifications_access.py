"""Every cell of docs/access.md's Notifications table, run on notifications' real entrypoints over
a SQLite store, without a broker: what a cell allows answers 2xx; what it refuses answers 401/403
(the RPC's wire code) and leaves every table as it was. A signed link is its own credential,
whoever follows it. `own`: the webhook knocked on was registered by the `system` column, and a
municipal system that did not register it is told there is no such webhook (404)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.notifications import deliveries as log_
from services.notifications import hooks
from services.notifications.links import Links
from services.notifications.live import LiveFeed
from services.notifications.sender import Sender
from services.notifications.service import NotificationsService, NotificationStore
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.contracts.errors import WireError
from tests import accessdoc
from tests.support import ROOT
from tests.workers import Host, http_answer, rpc_reply

OBRAS = "obras_publicas"
FOLIO = "QRO-2026-000123"
LINKS = Links("expediente-notification-links-dev", "http://localhost:8003",
              "http://localhost:8001/seguimiento")
# The page's columns (its "Who knocks"): roles and claims; the citizen holds no bearer token.
PRINCIPALS: dict[str, dict[str, Any]] = {
    "anon": {}, "citizen": {}, "operator": {"roles": ("operator",)},
    "sup:obras": {"roles": ("supervisor",), "department": OBRAS},
    "sup": {"roles": ("supervisor",)}, "crew:C-01": {"roles": ("crew",), "crew_id": "C-01"},
    "billing": {"roles": ("billing_clerk",)}, "auditor": {"roles": ("auditor",)},
    "system": {"roles": ("system",)}, "admin": {"roles": ("admin",)},
    "sup+op:obras": {"roles": ("supervisor", "operator"), "department": OBRAS},
}
OURS = "matriz-system"  # the subject of the `system` column: the webhooks' registrant
OTHER = "matriz-otro-sistema"  # another municipal system
SERIAL = itertools.count(1)
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    # The sender stays off: what a door scheduled stays as the door left it.
    config = load_config(
        ROOT / "services/notifications/config.yaml", DELIVERY_SENDER="off",
        NOTIFICATIONS_PERSISTENCE_MODULE="eventsourcing.sqlite",
        NOTIFICATIONS_SQLITE_DBNAME=str(tmp_path_factory.mktemp("notifications") / "n.sqlite"),
        LINK_SECRET="expediente-notification-links-dev", WEBHOOK_ALLOW_PRIVATE="true")
    host = Host(NotificationsService, config).provide(
        store=NotificationStore(), notices=Sender(store="store"), auth=Auth()).start()
    host.provide(live=LiveFeed())  # set up, not started: its queue is the broker's
    yield host
    host.stop()


def token(host: Host, column: str, subject: str | None = None) -> str | None:
    who = PRINCIPALS[column]
    if not who:
        return None
    return mint_token(subject or f"matriz-{column}", who["roles"], config=host.config,
                      department=who.get("department"), crew_id=who.get("crew_id"))


def store(host: Host) -> Any:
    return host.providers["store"].store


def everything(host: Host) -> dict[str, list[str]]:
    """Every row of every table of the store."""
    tables, _ = store(host).run("SELECT name FROM sqlite_master WHERE type = 'table' "
                                "ORDER BY name")
    return {name: sorted(map(repr, store(host).run(f"SELECT * FROM {name}")[0]))
            for (name,) in tables}


BEFORE: list[dict[str, list[str]]] = [{}]  # the store as the knock was sent


def answer(host: Host, column: str, method: str, path: str, *, subject: str | None = None,
           **request: Any) -> tuple[int, Any]:
    BEFORE[0] = everything(host)
    response = http_answer(host, method, path, token=token(host, column, subject), **request)
    return response.status_code, response.get_json(silent=True)


def call(host: Host, column: str, method: str, *args: Any) -> tuple[int, Any]:
    BEFORE[0] = everything(host)
    try:
        return 200, rpc_reply(host, method, *args, token=token(host, column))
    except WireError as refused:
        return refused.status, None


# ---- what a knock needs in the store -------------------------------------------------------------

def follower(host: Host) -> str:
    """A neighbour who asked to follow the folio and has not confirmed yet."""
    with store(host).transaction() as tx:
        found, _ = log_.subscribe(tx, FOLIO, "email", f"vecina{next(SERIAL)}@example.com",
                                  role="follower")
    return found.id


def registered(host: Host, owner: str = OURS) -> str:
    with store(host).transaction() as tx:
        return str(hooks.register(tx, owner, "https://10.0.0.8/avisos", [], [OBRAS])["id"])


def push_subscription() -> dict[str, Any]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": f"https://push.example.net/send/{next(SERIAL)}", "keys": {
        "p256dh": base64.urlsafe_b64encode(point).decode().rstrip("="),
        "auth": base64.urlsafe_b64encode(bytes(16)).decode().rstrip("=")}}


# ---- a knock per door: (host, column, subject) -> (status, body) ---------------------------------

def link(method: str, page: str, purpose: str) -> Callable[..., tuple[int, Any]]:
    def knock(host, column, subject=None):
        signed = LINKS.token(purpose, follower(host))
        return answer(host, column, method, f"/{page}/{signed}", subject=subject)
    return knock


def live(host, column, subject=None):
    BEFORE[0] = everything(host)
    response = http_answer(host, "GET", f"/live/{FOLIO}", token=token(host, column, subject))
    try:
        first = next(iter(response.response)) if response.status_code == 200 else None
    finally:
        response.close()  # the stream's generator ends: the browser left
    assert first is None or first.startswith("retry:"), first
    return response.status_code, None


def push(host, column, subject=None):
    return answer(host, column, "POST", f"/reports/{FOLIO}/push", subject=subject,
                  json={"subscription": push_subscription(), "language": "es"})


def register(host, column, subject=None):
    return answer(host, column, "POST", "/webhooks", subject=subject, json={
        "url": f"https://10.0.0.9/avisos/{next(SERIAL)}", "types": [], "departments": [OBRAS]})


def on_hook(method: str, suffix: str = "") -> Callable[..., tuple[int, Any]]:
    """A door about one webhook, knocked on the one the `system` column registered."""
    def knock(host, column, subject=None):
        return answer(host, column, method, f"/webhooks/{registered(host)}{suffix}",
                      subject=subject)
    return knock


def list_hooks(host, column, subject=None):
    registered(host), registered(host, OTHER)
    return answer(host, column, "GET", "/webhooks", subject=subject)


def document(host, column, subject=None):
    return call(host, column, "send_document", {
        "reference": f"receipt:PAY-{next(SERIAL)}", "channel": "email",
        "email": "ana@example.com", "subject": "Su recibo", "text": "Gracias por su pago.",
        "filename": "recibo.pdf", "data": PDF.decode()})


def get(path: str) -> Callable[..., tuple[int, Any]]:
    return lambda host, column, subject=None: answer(host, column, "GET", path, subject=subject)


KNOCKS: dict[str, Callable[..., tuple[int, Any]]] = {
    "GET /confirmar/{token}": link("GET", "confirmar", "confirm"),
    "POST /confirmar/{token}": link("POST", "confirmar", "confirm"),
    "GET /baja/{token}": link("GET", "baja", "opt-out"),
    "POST /baja/{token}": link("POST", "baja", "opt-out"),
    "GET /live/{folio}": live, "GET /push/key": get("/push/key"),
    "POST /reports/{folio}/push": push,
    "POST /webhooks": register, "GET /webhooks": list_hooks,
    "GET /webhooks/{hook_id}": on_hook("GET"),
    "POST /webhooks/{hook_id}/rotate": on_hook("POST", "/rotate"),
    "DELETE /webhooks/{hook_id}": on_hook("DELETE"),
    "GET /webhooks/{hook_id}/deliveries": on_hook("GET", "/deliveries"),
    "GET /deliveries": get("/deliveries"),
    "POST /deliveries/replay": lambda host, column, subject=None: answer(
        host, column, "POST", "/deliveries/replay", subject=subject, json={"channel": "sms"}),
    "replay_deliveries": lambda host, column, subject=None: call(
        host, column, "replay_deliveries", {"channel": "sms"}),
    "POST /erasures": lambda host, column, subject=None: answer(
        host, column, "POST", "/erasures", subject=subject, json={"email": "nadie@example.com"}),
    "erase": lambda host, column, subject=None: call(host, column, "erase",
                                                     {"email": "nadie@example.com"}),
    "send_document": document,
    "GET /healthz": get("/healthz"), "GET /readyz": get("/readyz"),
    "GET /metrics": get("/metrics"), "GET /openapi.json": get("/openapi.json"),
}


def cases() -> list[Any]:
    return [pytest.param(door, column, cell, id=f"{door} [{column}]")
            for row in accessdoc.rows() if row.section == "Notifications"
            for door in row.doors for column, cell in row.cells.items()]


def test_the_table_names_every_door_and_every_door_is_knocked_on():
    doors = {door for row in accessdoc.rows() if row.section == "Notifications"
             for door in row.doors}
    assert doors == set(KNOCKS)


@pytest.mark.parametrize(("door", "column", "cell"), cases())
def test_who_may_use_each_notifications_door(host, door, column, cell):
    knock = KNOCKS[door]
    status, body = knock(host, column)
    if not cell.allowed:
        assert status == int(cell.access), body
        assert everything(host) == BEFORE[0]  # a refusal writes nothing
        return
    assert 200 <= status < 300, (status, body)
    if door == "POST /webhooks":
        assert body["owner"] == f"matriz-{column}"
    if door == "GET /webhooks":
        owners = {hook["owner"] for hook in body["webhooks"]}
        assert (owners == {OURS}) if cell.access == "own" else ({OURS, OTHER} <= owners)
    if cell.access == "own":
        theirs = knock(host, column, OTHER)  # another system, on the webhook ours registered
        if door == "GET /webhooks":
            assert {hook["owner"] for hook in theirs[1]["webhooks"]} == {OTHER}
        elif door == "POST /webhooks":
            assert answer(host, column, "GET", f"/webhooks/{body['id']}",
                          subject=OTHER)[0] == 404
        else:
            assert theirs[0] == 404, theirs
            assert everything(host) == BEFORE[0]


@pytest.mark.parametrize("door", ["GET /confirmar/{token}", "POST /confirmar/{token}",
                                  "GET /baja/{token}", "POST /baja/{token}"])
def test_a_link_altered_or_signed_for_the_other_purpose_is_not_found_and_changes_nothing(
        host, door):
    method, path = door.split()
    page, purpose = path.split("/")[1], "confirm" if "confirmar" in path else "opt-out"
    subscription = follower(host)
    other = "opt-out" if purpose == "confirm" else "confirm"
    signed = LINKS.token(purpose, subscription)
    for forged in (LINKS.token(other, subscription),
                   signed[:-1] + ("1" if signed[-1] == "0" else "0")):
        status, _ = answer(host, "anon", method, f"/{page}/{forged}")
        assert status == 404
        assert everything(host) == BEFORE[0]
