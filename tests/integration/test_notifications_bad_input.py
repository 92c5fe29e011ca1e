"""Notifications refuses hostile input on PostgreSQL, the store production uses (it refuses what
SQLite keeps, U+0000 for one): every HTTP door of the running service, the RPCs billing and
operators call, and the contact handoff's queue. Each refusal is a 4xx with a clear JSON error (a
small page for the citizen's /confirmar and /baja pages), never a 5xx, and writes nothing: every
notifications table reads the same before and after. Webhooks are held to production's rules
here: https only, and never to a loopback, link-local or private address."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import kombu
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from services.notifications.links import Links
from shared.chassis.auth import mint_token
from shared.chassis.deadletters import list_dead_letters
from shared.contracts import contacts
from tests.notifystack import NotificationsStack
from tests.stack import pg_connect
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.postgres]

FOLIO = "QRO-2026-000123"
LINK_SECRET = "expediente-notification-links-dev"  # config.yaml's development default
TABLES = {"subscriptions", "seen_events", "report_scope", "webhooks", "deliveries",
          "delivery_attempts", "documents", "erasures"}
PUBLIC_URL = "https://203.0.114.10/hooks/expediente"  # a public address: no DNS needed
PDF = base64.b64encode(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n").decode()


@dataclass(frozen=True)
class World:
    """What the stack holds before any hostile request: one webhook of `test-system`, a follower
    waiting to confirm (and the links of its first message), a delivery parked for replay."""

    hook: str
    confirm: str
    opt_out: str
    parked: str


def token(subject: str, *roles: str, **options: Any) -> str:
    return mint_token(subject, roles, **options)


def unsigned(claims: dict[str, Any]) -> str:
    """A JWT with `alg: none`: claims anyone could write."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BEARERS: dict[str | None, str | None] = {
    None: None,
    "admin": f"Bearer {token('test-admin', 'admin')}",
    "system": f"Bearer {token('test-system', 'system')}",
    "other-system": f"Bearer {token('test-other-system', 'system')}",
    "supervisor": f"Bearer {token('test-supervisor', 'supervisor')}",
    "billing": f"Bearer {token('test-billing', 'billing_clerk')}",
    "forged": "Bearer " + token("test-admin", "admin", config={
        "JWT_SECRET": "not-the-city-s-key-but-long-enough-to-sign-with-0123456789"}),
    "expired": f"Bearer {token('test-admin', 'admin', ttl_seconds=-120)}",
    "unsigned": "Bearer " + unsigned({"sub": "test-admin", "roles": ["admin"],
                                      "exp": 4_000_000_000}),
    "garbage": "Bearer not.a.token",
    "basic": "Basic YWRtaW46YWRtaW4=",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = NotificationsStack(tmp_path_factory.mktemp("notify-bad-input"), store="postgres",
                                 notify_env={"WEBHOOK_ALLOW_HTTP": "",
                                             "WEBHOOK_ALLOW_PRIVATE": ""}).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def world(stack) -> World:
    answer = requests.post(f"{stack.notifications.url}/webhooks", json={"url": PUBLIC_URL},
                           headers={"Authorization": BEARERS["system"]}, timeout=20)
    assert answer.status_code == 201, answer.text
    hook = answer.json()["id"]
    follower, parked = str(uuid.uuid4()), "parked-delivery-of-the-webhook"
    with pg_connect() as conn:
        conn.execute(f"SET search_path TO {stack.schemas['notifications']}")
        conn.execute("INSERT INTO subscriptions (id, folio, channel, address, language, role, "
                     "status, created_at) VALUES (%s, %s, 'email', 'ana@example.com', 'es', "
                     "'follower', 'pending', '2026-11-22T21:00:00+00:00')", (follower, FOLIO))
        conn.execute("INSERT INTO deliveries (key, folio, webhook_id, channel, purpose, status, "
                     "attempts, next_attempt_at, detail, created_at, settled_at) VALUES (%s, %s, "
                     "%s, 'webhook', 'step', 'parked', 3, '2026-11-22T21:00:00+00:00', "
                     "'503 Service Unavailable', '2026-11-22T21:00:00+00:00', "
                     "'2026-11-22T21:01:00+00:00')", (parked, FOLIO, hook))
    links = Links(LINK_SECRET, "http://unused", "http://unused")
    return World(hook, links.token("confirm", follower), links.token("opt-out", follower), parked)


def snapshot(stack) -> dict[str, list[str]]:
    """Every row of every notifications table, as text."""
    tables = stack.tables("notifications")
    assert tables >= TABLES
    return {table: sorted(repr(row) for row in stack.query("notifications",
                                                           f"SELECT * FROM {table}"))
            for table in sorted(tables)}


# ---- HTTP ---------------------------------------------------------------------------------

Body = dict[str, Any] | list[Any] | bytes | None
NUL, SURROGATE = "\x00", "\ud800"  # json.dumps writes the surrogate as the escape \ud800


def deep(levels: int) -> bytes:
    return b'{"url": ' + b"[" * levels + b"]" * levels + b"}"


def push_keys() -> dict[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": base64.urlsafe_b64encode(point).decode().rstrip("="),
            "auth": base64.urlsafe_b64encode(b"\x07" * 16).decode().rstrip("=")}


KEYS = push_keys()
ENDPOINT = "https://push.example.net/send/abc123"


def browser(**changed: Any) -> dict[str, Any]:
    """A browser's PushSubscription with `changed` in it."""
    return {"subscription": {"endpoint": ENDPOINT, "expirationTime": None, "keys": KEYS,
                             **changed}}


def keys(**changed: Any) -> dict[str, Any]:
    return browser(keys={**KEYS, **changed})


JSON_NONSENSE: list[tuple[str, Body]] = [
    ("not JSON", b"url=https://example.com"),
    ("not UTF-8", b'{"url": "\xff\xfe"}'),
    ("a list", [PUBLIC_URL]),
    ("null", b"null"),
    ("NaN", b'{"url": NaN}'),
    ("nested", deep(100)),
]


def nonsense(method: str, path: str, role: str | None) -> list[tuple[str, str, str, str | None,
                                                                     Body, int]]:
    return [(f"{path} {name}", method, path, role, body, 400) for name, body in JSON_NONSENSE]


# (case, method, path, role, body, status); {hook}, {confirm}, {opt_out} name the World's.
HOSTILE: list[tuple[str, str, str, str | None, Body, int]] = [
    # webhooks: production's URL rules, scopes, the owner's role
    ("http webhook", "POST", "/webhooks", "system", {"url": "http://203.0.114.10/hook"}, 400),
    ("loopback", "POST", "/webhooks", "system", {"url": "https://127.0.0.1/hook"}, 400),
    ("localhost", "POST", "/webhooks", "system", {"url": "https://localhost:8443/hook"}, 400),
    ("private", "POST", "/webhooks", "system", {"url": "https://10.0.0.8/hook"}, 400),
    ("metadata", "POST", "/webhooks", "system",
     {"url": "https://169.254.169.254/latest/meta-data/"}, 400),
    ("ipv6 loopback", "POST", "/webhooks", "system", {"url": "https://[::1]/hook"}, 400),
    ("mapped", "POST", "/webhooks", "system", {"url": "https://[::ffff:10.0.0.8]/hook"}, 400),
    ("cgnat", "POST", "/webhooks", "system", {"url": "https://100.64.0.1/hook"}, 400),
    ("javascript", "POST", "/webhooks", "system", {"url": "javascript:alert(1)"}, 400),
    ("file", "POST", "/webhooks", "system", {"url": "file:///etc/passwd"}, 400),
    ("ftp", "POST", "/webhooks", "system", {"url": "ftp://203.0.114.10/hook"}, 400),
    ("credentials", "POST", "/webhooks", "system",
     {"url": "https://user:secret@203.0.114.10/hook"}, 400),
    ("NUL url", "POST", "/webhooks", "system", {"url": PUBLIC_URL + NUL}, 400),
    ("surrogate url", "POST", "/webhooks", "system", {"url": PUBLIC_URL + SURROGATE}, 400),
    ("overlong url", "POST", "/webhooks", "system", {"url": PUBLIC_URL + "/a" * 1000}, 400),
    ("url a number", "POST", "/webhooks", "system", {"url": 42}, 400),
    ("url an object", "POST", "/webhooks", "system", {"url": {"href": PUBLIC_URL}}, 400),
    ("no url", "POST", "/webhooks", "system", {"types": []}, 400),
    ("unknown type", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "types": ["mx.expediente.report.exploded"]}, 400),
    ("types a string", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "types": "mx.expediente.report.closed"}, 400),
    ("NUL type", "POST", "/webhooks", "system", {"url": PUBLIC_URL, "types": [NUL]}, 400),
    ("empty department", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": [""]}, 400),
    ("NUL department", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": ["obras" + NUL]}, 400),
    ("surrogate department", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": [SURROGATE]}, 400),
    ("long department", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": ["d" * 65]}, 400),
    ("51 departments", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": [f"d{n}" for n in range(51)]}, 400),
    ("nested department", "POST", "/webhooks", "system",
     {"url": PUBLIC_URL, "departments": [{"name": "obras"}]}, 400),
    ("own secret", "POST", "/webhooks", "system", {"url": PUBLIC_URL, "secret": "mine"}, 400),
    ("webhook too large", "POST", "/webhooks", "system",
     b'{"url": "' + b"a" * 9000 + b'"}', 413),
    *nonsense("POST", "/webhooks", "system"),
    ("supervisor registers", "POST", "/webhooks", "supervisor", {"url": PUBLIC_URL}, 403),
    ("nobody registers", "POST", "/webhooks", None, {"url": PUBLIC_URL}, 401),
    ("forged registers", "POST", "/webhooks", "forged", {"url": PUBLIC_URL}, 401),
    ("unsigned registers", "POST", "/webhooks", "unsigned", {"url": PUBLIC_URL}, 401),
    ("basic registers", "POST", "/webhooks", "basic", {"url": PUBLIC_URL}, 401),
    ("supervisor lists", "GET", "/webhooks", "supervisor", None, 403),
    ("nobody lists", "GET", "/webhooks", None, None, 401),
    ("expired lists", "GET", "/webhooks", "expired", None, 401),
    ("garbage lists", "GET", "/webhooks", "garbage", None, 401),
    ("NUL id", "GET", "/webhooks/%00", "system", None, 404),
    ("surrogate id", "GET", "/webhooks/%ED%A0%80", "system", None, 404),
    ("long id", "GET", "/webhooks/" + "a" * 5000, "system", None, 404),
    ("quote id", "GET", "/webhooks/'%20OR%20'1'='1", "system", None, 404),
    ("another's webhook", "GET", "/webhooks/{hook}", "other-system", None, 404),
    ("supervisor reads", "GET", "/webhooks/{hook}", "supervisor", None, 403),
    ("nobody reads", "GET", "/webhooks/{hook}", None, None, 401),
    ("rotate NUL id", "POST", "/webhooks/%00/rotate", "system", None, 404),
    ("rotate another's", "POST", "/webhooks/{hook}/rotate", "other-system", None, 404),
    ("rotate as supervisor", "POST", "/webhooks/{hook}/rotate", "supervisor", None, 403),
    ("rotate too large", "POST", "/webhooks/{hook}/rotate", "system", b"x" * 2000, 413),
    ("delete NUL id", "DELETE", "/webhooks/%00", "system", None, 404),
    ("delete another's", "DELETE", "/webhooks/{hook}", "other-system", None, 404),
    ("delete as supervisor", "DELETE", "/webhooks/{hook}", "supervisor", None, 403),
    ("delete unsigned", "DELETE", "/webhooks/{hook}", "unsigned", None, 401),
    ("deliveries of NUL id", "GET", "/webhooks/%00/deliveries", "system", None, 404),
    ("deliveries of another's", "GET", "/webhooks/{hook}/deliveries", "other-system", None,
     404),
    ("deliveries bad status", "GET", "/webhooks/{hook}/deliveries?status=lost", "system", None,
     400),
    ("deliveries limit 0", "GET", "/webhooks/{hook}/deliveries?limit=0", "system", None, 400),
    ("deliveries limit text", "GET", "/webhooks/{hook}/deliveries?limit=all", "system", None,
     400),
    ("deliveries offset -1", "GET", "/webhooks/{hook}/deliveries?offset=-1", "system", None,
     400),
    ("deliveries unknown", "GET", "/webhooks/{hook}/deliveries?webhook_id=x", "system", None,
     400),
    ("deliveries as supervisor", "GET", "/webhooks/{hook}/deliveries", "supervisor", None, 403),
    # the operator's delivery log, replay and erasure: admin only
    ("log bad status", "GET", "/deliveries?status=lost", "admin", None, 400),
    ("log bad channel", "GET", "/deliveries?channel=fax", "admin", None, 400),
    ("log limit 501", "GET", "/deliveries?limit=501", "admin", None, 400),
    ("log limit float", "GET", "/deliveries?limit=1.5", "admin", None, 400),
    ("log huge offset", "GET", "/deliveries?offset=99999999999999999999", "admin", None, 400),
    ("log NUL folio", "GET", "/deliveries?folio=%00", "admin", None, 400),
    ("log long folio", "GET", "/deliveries?folio=" + "Q" * 41, "admin", None, 400),
    ("log unknown", "GET", "/deliveries?key=x", "admin", None, 400),
    ("log as system", "GET", "/deliveries", "system", None, 403),
    ("log as supervisor", "GET", "/deliveries", "supervisor", None, 403),
    ("log nobody", "GET", "/deliveries", None, None, 401),
    ("replay keys a string", "POST", "/deliveries/replay", "admin", {"keys": "all"}, 400),
    ("replay NUL key", "POST", "/deliveries/replay", "admin", {"keys": [NUL]}, 400),
    ("replay surrogate key", "POST", "/deliveries/replay", "admin", {"keys": [SURROGATE]}, 400),
    ("replay empty key", "POST", "/deliveries/replay", "admin", {"keys": [""]}, 400),
    ("replay long key", "POST", "/deliveries/replay", "admin", {"keys": ["k" * 65]}, 400),
    ("replay number key", "POST", "/deliveries/replay", "admin", {"keys": [7]}, 400),
    ("replay 1001 keys", "POST", "/deliveries/replay", "admin",
     {"keys": [f"k{n}" for n in range(1001)]}, 400),
    ("replay bad channel", "POST", "/deliveries/replay", "admin", {"channel": "fax"}, 400),
    ("replay unknown", "POST", "/deliveries/replay", "admin", {"status": "parked"}, 400),
    ("replay too large", "POST", "/deliveries/replay", "admin",
     b'{"keys": ["' + b"k" * (130 * 1024) + b'"]}', 413),
    *nonsense("POST", "/deliveries/replay", "admin"),
    ("replay as system", "POST", "/deliveries/replay", "system", {}, 403),
    ("replay nobody", "POST", "/deliveries/replay", None, {}, 401),
    ("replay forged", "POST", "/deliveries/replay", "forged", {}, 401),
    ("erase nothing", "POST", "/erasures", "admin", {}, 400),
    ("erase two", "POST", "/erasures", "admin",
     {"folio": FOLIO, "email": "ana@example.com"}, 400),
    ("erase not an email", "POST", "/erasures", "admin", {"email": "ana at example"}, 400),
    ("erase NUL email", "POST", "/erasures", "admin", {"email": "ana@example.com" + NUL}, 400),
    ("erase surrogate email", "POST", "/erasures", "admin",
     {"email": "ana" + SURROGATE + "@example.com"}, 400),
    ("erase email a list", "POST", "/erasures", "admin", {"email": ["ana@example.com"]}, 400),
    ("erase email an operator", "POST", "/erasures", "admin", {"email": {"$ne": ""}}, 400),
    ("erase not a phone", "POST", "/erasures", "admin", {"phone": "llámame"}, 400),
    ("erase NUL phone", "POST", "/erasures", "admin", {"phone": "+52 442 123 4567" + NUL}, 400),
    ("erase NUL folio", "POST", "/erasures", "admin", {"folio": NUL}, 400),
    ("erase not a folio", "POST", "/erasures", "admin", {"folio": "no es folio"}, 400),
    ("erase long folio", "POST", "/erasures", "admin", {"folio": FOLIO * 3}, 400),
    ("erase folio a number", "POST", "/erasures", "admin", {"folio": 123}, 400),
    ("erase too large", "POST", "/erasures", "admin",
     b'{"email": "' + b"a" * 5000 + b'@example.com"}', 413),
    *nonsense("POST", "/erasures", "admin"),
    ("erase as system", "POST", "/erasures", "system", {"folio": FOLIO}, 403),
    ("erase as supervisor", "POST", "/erasures", "supervisor", {"folio": FOLIO}, 403),
    ("erase nobody", "POST", "/erasures", None, {"folio": FOLIO}, 401),
    ("erase expired", "POST", "/erasures", "expired", {"folio": FOLIO}, 401),
    # the status page's "avísame": a folio, and a browser's PushSubscription
    ("push bad folio", "POST", "/reports/no-es-folio/push", None, browser(), 400),
    ("push NUL folio", "POST", "/reports/%00/push", None, browser(), 400),
    ("push long folio", "POST", "/reports/QRO-2026-" + "1" * 30 + "/push", None, browser(), 400),
    ("push no subscription", "POST", f"/reports/{FOLIO}/push", None, {}, 400),
    ("push subscription a string", "POST", f"/reports/{FOLIO}/push", None,
     {"subscription": ENDPOINT}, 400),
    ("push subscription a list", "POST", f"/reports/{FOLIO}/push", None,
     {"subscription": [ENDPOINT]}, 400),
    ("push javascript", "POST", f"/reports/{FOLIO}/push", None,
     browser(endpoint="javascript:alert(1)"), 400),
    ("push file", "POST", f"/reports/{FOLIO}/push", None,
     browser(endpoint="file:///etc/passwd"), 400),
    ("push NUL endpoint", "POST", f"/reports/{FOLIO}/push", None,
     browser(endpoint=ENDPOINT + NUL), 400),
    ("push surrogate endpoint", "POST", f"/reports/{FOLIO}/push", None,
     browser(endpoint=ENDPOINT + SURROGATE), 400),
    ("push endpoint a number", "POST", f"/reports/{FOLIO}/push", None, browser(endpoint=7),
     400),
    ("push long endpoint", "POST", f"/reports/{FOLIO}/push", None,
     browser(endpoint=ENDPOINT + "a" * 2100), 400),
    ("push no keys", "POST", f"/reports/{FOLIO}/push", None, browser(keys=None), 400),
    ("push short auth", "POST", f"/reports/{FOLIO}/push", None,
     keys(auth=base64.urlsafe_b64encode(b"\x07" * 15).decode()), 400),
    ("push p256dh off the curve", "POST", f"/reports/{FOLIO}/push", None,
     keys(p256dh=base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).decode().rstrip("=")), 400),
    ("push NUL key", "POST", f"/reports/{FOLIO}/push", None, keys(auth=NUL * 22), 400),
    ("push bad language", "POST", f"/reports/{FOLIO}/push", None,
     {**browser(), "language": "fr"}, 400),
    ("push too large", "POST", f"/reports/{FOLIO}/push", None,
     b'{"subscription": {"endpoint": "' + b"a" * 5000 + b'"}}', 413),
    *nonsense("POST", f"/reports/{FOLIO}/push", None),
    ("push key posted", "POST", "/push/key", None, {}, 405),
    # the live stream: a folio, and where to resume
    ("live bad folio", "GET", "/live/no-es-folio", None, None, 400),
    ("live NUL folio", "GET", "/live/%00", None, None, 400),
    ("live long folio", "GET", "/live/" + "Q" * 5000, None, None, 400),
    ("live after negative", "GET", f"/live/{FOLIO}?after=-1", None, None, 400),
    ("live after text", "GET", f"/live/{FOLIO}?after=tres", None, None, 400),
    ("live after exponent", "GET", f"/live/{FOLIO}?after=1e3", None, None, 400),
    ("live after too far", "GET", f"/live/{FOLIO}?after=9999999999", None, None, 400),
    ("live after NUL", "GET", f"/live/{FOLIO}?after=%00", None, None, 400),
    ("live after newline", "GET", f"/live/{FOLIO}?after=3%0A", None, None, 400),
    ("live after unicode digits", "GET", f"/live/{FOLIO}?after=%C2%B2", None, None, 400),
    ("live posted", "POST", f"/live/{FOLIO}", None, {}, 405),
]

PAGES: list[tuple[str, str, str, bytes | None, int]] = [
    # (case, method, path, body, status): the citizen's pages answer with small pages
    ("garbage", "GET", "/confirmar/abc", None, 404),
    ("NUL", "GET", "/confirmar/%00", None, 404),
    ("surrogate", "GET", "/confirmar/%ED%A0%80", None, 404),
    ("long", "GET", "/confirmar/" + "a" * 5000, None, 404),
    ("opt-out link to confirm", "GET", "/confirmar/{opt_out}", None, 404),
    ("another secret", "GET", "/confirmar/{forged_confirm}", None, 404),
    ("no such subscription", "GET", "/confirmar/{stranger_confirm}", None, 404),
    ("post garbage", "POST", "/confirmar/abc", None, 404),
    ("post opt-out link to confirm", "POST", "/confirmar/{opt_out}", None, 404),
    ("post no such subscription", "POST", "/confirmar/{stranger_confirm}", None, 404),
    ("post too large", "POST", "/confirmar/{confirm}", b"x" * 2000, 413),
    ("opt out garbage", "GET", "/baja/abc", None, 404),
    ("opt out NUL", "GET", "/baja/%00", None, 404),
    ("confirm link to opt out", "GET", "/baja/{confirm}", None, 404),
    ("opt out another secret", "GET", "/baja/{forged_opt_out}", None, 404),
    ("opt out no such subscription", "GET", "/baja/{stranger_opt_out}", None, 404),
    ("post opt out garbage", "POST", "/baja/abc", b"List-Unsubscribe=One-Click", 404),
    ("post confirm link to opt out", "POST", "/baja/{confirm}", b"List-Unsubscribe=One-Click",
     404),
    ("post opt out another secret", "POST", "/baja/{forged_opt_out}", None, 404),
    ("post opt out too large", "POST", "/baja/{opt_out}", b"List-Unsubscribe=One-Click" * 100,
     413),
]


def path_of(template: str, world: World) -> str:
    stranger = str(uuid.uuid4())
    ours = Links(LINK_SECRET, "http://unused", "http://unused")
    theirs = Links("not-our-link-secret", "http://unused", "http://unused")
    follower = world.confirm.split(".")[0]
    return template.format(
        hook=world.hook, confirm=world.confirm, opt_out=world.opt_out,
        stranger_confirm=ours.token("confirm", stranger),
        stranger_opt_out=ours.token("opt-out", stranger),
        forged_confirm=theirs.token("confirm", follower),
        forged_opt_out=theirs.token("opt-out", follower))


def send(stack, method: str, path: str, role: str | None, body: Body,
         **headers: str) -> requests.Response:
    authorization = BEARERS[role]
    if authorization:
        headers["Authorization"] = authorization
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    return requests.request(method, stack.notifications.url + path, data=data, headers=headers,
                            timeout=20, allow_redirects=False)


@pytest.mark.parametrize(("case", "method", "path", "role", "body", "status"), HOSTILE,
                         ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_a_4xx_with_a_clear_error_that_writes_nothing(stack, world, case,
                                                                       method, path, role,
                                                                       body, status):
    before = snapshot(stack)

    answer = send(stack, method, path_of(path, world), role, body)

    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] and error["message"] and error["request_id"]
    assert snapshot(stack) == before


@pytest.mark.parametrize(("case", "method", "path", "body", "status"), PAGES,
                         ids=[case[0] for case in PAGES])
def test_a_bad_confirmation_or_opt_out_link_is_a_small_page_that_changes_nothing(
        stack, world, case, method, path, body, status):
    before = snapshot(stack)

    answer = send(stack, method, path_of(path, world), None, body,
                  **{"Content-Type": "application/x-www-form-urlencoded"} if body else {})

    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<h1>" in answer.text and len(answer.content) < 4096
    assert world.confirm not in answer.text  # a link is never shown back
    assert snapshot(stack) == before


def test_the_follower_s_own_links_still_work_after_all_that(stack, world):
    """The pages above refused what they should, not everything: the real links open."""
    for path in (f"/confirmar/{world.confirm}", f"/baja/{world.opt_out}"):
        answer = requests.get(stack.notifications.url + path, timeout=20)
        assert answer.status_code == 200, answer.text
        assert FOLIO in answer.text


def first_bytes(stack, path: str, last_event_id: bytes) -> tuple[int, bytes]:
    """Open the stream, read its first event (the reconnection delay) and hang up."""
    with requests.get(stack.notifications.url + path, headers={"Last-Event-ID": last_event_id},
                      stream=True, timeout=10) as answer:
        head = answer.raw.read(len(b"retry: 2000\n\n")) if answer.status_code == 200 else b""
        return answer.status_code, head


@pytest.mark.parametrize("last_event_id", [
    b"-1", b"tres", b"1e3", b"99999999999", b"0x10", b"3;4", b"%00", b"3\x00", b"\xff\xfe",
    b"\xb2",  # a latin-1 "²": a digit to str.isdigit, not to int()
])
def test_a_stream_resumed_from_a_hostile_last_event_id_starts_over(stack, last_event_id):
    before = snapshot(stack)

    answer = first_bytes(stack, f"/live/{FOLIO}", last_event_id)

    assert answer == (200, b"retry: 2000\n\n")
    assert snapshot(stack) == before


# ---- RPC ----------------------------------------------------------------------------------

DOCUMENT = {"reference": "receipt:PAY-123", "channel": "email", "email": "ana@example.com",
            "subject": "Su recibo", "text": "Adjuntamos su recibo.", "filename": "recibo.pdf",
            "data": PDF}


def document(**changed: Any) -> dict[str, Any]:
    return {key: value for key, value in {**DOCUMENT, **changed}.items() if value is not None}


RPC_HOSTILE: list[tuple[str, str, Any, str | None, str]] = [
    # (case, method, payload, role, code)
    ("document a string", "send_document", "recibo", "system", "invalid_input"),
    ("document a list", "send_document", [DOCUMENT], "system", "invalid_input"),
    ("document null", "send_document", None, "system", "invalid_input"),
    ("document empty", "send_document", {}, "system", "invalid_input"),
    ("NUL text", "send_document", document(text="Su recibo" + NUL), "system", "invalid_input"),
    ("surrogate text", "send_document", document(text="Su recibo " + SURROGATE), "system",
     "invalid_input"),
    ("control text", "send_document", document(text="Su recibo\x1b[2J"), "system",
     "invalid_input"),
    ("long text", "send_document", document(text="a" * 4001), "system", "invalid_input"),
    ("NUL subject", "send_document", document(subject=NUL), "system", "invalid_input"),
    ("two-line subject", "send_document", document(subject="Recibo\r\nBcc: x@evil.example"),
     "system", "invalid_input"),
    ("path filename", "send_document", document(filename="../../etc/passwd.pdf"), "system",
     "invalid_input"),
    ("exe filename", "send_document", document(filename="recibo.exe"), "system",
     "invalid_input"),
    ("not base64", "send_document", document(data="%%%not-base64%%%"), "system",
     "invalid_input"),
    ("surrogate data", "send_document", document(data=PDF + SURROGATE), "system",
     "invalid_input"),
    ("not a PDF", "send_document", document(data=base64.b64encode(b"MZ\x90\x00").decode()),
     "system", "invalid_input"),
    ("sms document", "send_document", document(channel="sms"), "system", "invalid_input"),
    ("email without email", "send_document", document(email=None), "system", "invalid_input"),
    ("not an email", "send_document", document(email="ana at example"), "system",
     "invalid_input"),
    ("NUL email", "send_document", document(email="ana@example.com" + NUL), "system",
     "invalid_input"),
    ("whatsapp not a phone", "send_document",
     document(channel="whatsapp", email=None, phone="llámame"), "system", "invalid_input"),
    ("whatsapp impossible phone", "send_document",
     document(channel="whatsapp", email=None, phone="+1 234 567"), "system", "invalid_input"),
    ("NUL reference", "send_document", document(reference=NUL), "system", "invalid_input"),
    ("long reference", "send_document", document(reference="r" * 101), "system",
     "invalid_input"),
    ("html document", "send_document", document(content_type="text/html"), "system",
     "invalid_input"),
    ("unknown field", "send_document", document(address="ana@example.com"), "system",
     "invalid_input"),
    ("supervisor sends", "send_document", DOCUMENT, "supervisor", "forbidden"),
    ("nobody sends", "send_document", DOCUMENT, None, "unauthenticated"),
    ("forged sends", "send_document", DOCUMENT, "forged", "unauthenticated"),
    ("erase a string", "erase", "ana@example.com", "admin", "invalid_input"),
    ("erase a list", "erase", [], "admin", "invalid_input"),
    ("erase null", "erase", None, "admin", "invalid_input"),
    ("erase nothing", "erase", {}, "admin", "invalid_input"),
    ("erase not a folio", "erase", {"folio": "x"}, "admin", "invalid_input"),
    ("erase NUL email", "erase", {"email": NUL + "ana@example.com"}, "admin", "invalid_input"),
    ("erase surrogate phone", "erase", {"phone": "+52 442 123 4567" + SURROGATE}, "admin",
     "invalid_input"),
    ("erase two", "erase", {"folio": FOLIO, "phone": "+52 442 123 4567"}, "admin",
     "invalid_input"),
    ("erase as system", "erase", {"folio": FOLIO}, "system", "forbidden"),
    ("erase as billing", "erase", {"email": "ana@example.com"}, "billing", "forbidden"),
    ("erase nobody", "erase", {"folio": FOLIO}, None, "unauthenticated"),
    ("replay a list", "replay_deliveries", [], "admin", "invalid_input"),
    ("replay empty text", "replay_deliveries", "", "admin", "invalid_input"),
    ("replay zero", "replay_deliveries", 0, "admin", "invalid_input"),
    ("replay a word", "replay_deliveries", "all", "admin", "invalid_input"),
    ("replay keys a string", "replay_deliveries", {"keys": "parked-delivery-of-the-webhook"},
     "admin", "invalid_input"),
    ("replay NUL key", "replay_deliveries", {"keys": [NUL]}, "admin", "invalid_input"),
    ("replay bad channel", "replay_deliveries", {"channel": "fax"}, "admin", "invalid_input"),
    ("replay as system", "replay_deliveries", {}, "system", "forbidden"),
    ("replay unsigned", "replay_deliveries", {}, "unsigned", "unauthenticated"),
]


@pytest.mark.parametrize(("case", "method", "payload", "role", "code"), RPC_HOSTILE,
                         ids=[case[0] for case in RPC_HOSTILE])
def test_a_hostile_rpc_payload_is_a_wire_error_that_writes_nothing(stack, world, case, method,
                                                                   payload, role, code):
    before = snapshot(stack)
    context = {"authorization": BEARERS[role]} if BEARERS[role] else {}

    with ClusterRpcProxy({"AMQP_URI": stack.amqp_uri}, context_data=context,
                         timeout=20) as rpc:
        reply = getattr(rpc.notifications, method).call_async(payload)
        with pytest.raises(RemoteError):
            reply.result()

    assert reply.resp_body["error"]["code"] == code, reply.resp_body["error"]
    assert snapshot(stack) == before


# ---- the contact handoff's queue ----------------------------------------------------------

REQUEST = {"folio": FOLIO, "access_token": "t" * 24, "channel": "web",
           "contact": {"email": "luis@example.com", "notify_by": ["email"]},
           "requested_at": "2026-11-22T15:00:00-06:00"}

MALFORMED: list[tuple[str, bytes]] = [
    ("not JSON", b"folio=QRO-2026-000123&email=luis@example.com"),
    ("not UTF-8", b'{"folio": "\xff"}'),
    ("a list", json.dumps([REQUEST]).encode()),
    ("no contact", json.dumps({**REQUEST, "contact": None}).encode()),
    ("contact a string", json.dumps({**REQUEST, "contact": "luis@example.com"}).encode()),
    ("no folio", json.dumps({k: v for k, v in REQUEST.items() if k != "folio"}).encode()),
    ("NUL email", json.dumps({**REQUEST, "contact": {"email": "luis@example.com" + NUL}})
     .encode()),
    ("surrogate email", json.dumps({**REQUEST, "contact": {"email": "luis" + SURROGATE +
                                                                      "@example.com"}}).encode()),
    ("NUL folio", json.dumps({**REQUEST, "folio": NUL}).encode()),
    ("no date", json.dumps({**REQUEST, "requested_at": "ayer"}).encode()),
]


def publish(stack, body: bytes, message_id: str) -> None:
    with kombu.Connection(stack.amqp_uri) as conn:
        producer = conn.Producer()
        producer.publish(body, exchange=contacts.EXCHANGE, routing_key=contacts.ROUTING_KEY,
                         content_type="application/json", content_encoding="binary",
                         message_id=message_id, delivery_mode=2, mandatory=True)


def test_a_malformed_subscription_request_is_parked_and_subscribes_nobody(stack, world):
    before = snapshot(stack)
    sent = {f"malformed-{n}": case for n, (case, _) in enumerate(MALFORMED)}
    for message_id, (_, body) in zip(sent, MALFORMED, strict=True):
        publish(stack, body, message_id)

    def parked() -> dict[str, Any]:
        found = {letter["message_id"]: letter
                 for letter in list_dead_letters(stack.amqp_uri, contacts.QUEUE)}
        return found if set(sent) <= set(found) else {}

    found = wait_for(parked, timeout=30, message="the malformed requests parked")
    assert isinstance(found, dict)
    for message_id, case in sent.items():
        assert found[message_id]["reason"] == "invalid_request", case
    assert snapshot(stack) == before

    # The consumer was there all along: a well-formed request subscribes Luis.
    publish(stack, json.dumps(REQUEST).encode(), "well-formed")
    wait_for(lambda: stack.query("notifications", "SELECT status FROM subscriptions WHERE "
                                 "address = ?", ("luis@example.com",)) == [("active",)],
             timeout=30, message="Luis's subscription")
