"""Schemathesis against tracking, intake, crews, notifications and billing running on PostgreSQL,
each read from its own GET /openapi.json: every operation, with data its document calls valid and
data it calls invalid, answers no 5xx, a status and a content type its document names, a body its
document describes, and refuses what its document says is invalid.

The callers hold every credential the documents name (an admin's bearer token, an Open311
api_key, the chatbot's secret, an upload ticket); real folios, catalog codes, tokens, file names,
signed confirmation and opt-out links, webhook ids, and billing's account kinds, keys, check
values and payment references are offered as values (dictionaries) so the doors reach more than
their 404s. Deterministic: a fixed seed, at most MAX_EXAMPLES cases per operation and mode."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from services.notifications.links import Links
from shared.chassis.auth import mint_token
from tests.conftest import unique
from tests.stack import Stack, pg_connect
from tests.support import LocalServer, ServiceProcess

pytestmark = pytest.mark.e2e

SEED = 2026
MAX_EXAMPLES = 15
API_KEY = "st-open311-key"
CHATBOT_SECRET = "st-chatbot-secret"
ENV = {"OPEN311_API_KEYS": f"schemathesis:{API_KEY}", "CHATBOT_SECRET": CHATBOT_SECRET,
       # every case counts against a quota: make them out of reach
       "UPLOAD_TICKETS_PER_HOUR": "1000000", "PHOTO_UPLOADS_PER_HOUR": "1000000",
       "PHOTO_STAFF_UPLOADS_PER_HOUR": "1000000", "UPLOAD_TICKET_PHOTOS": "1000000"}
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")
# Doors that read more than their document says (so its invalid data is not checked there), why.
LENIENT: dict[tuple[str, str], str] = {}  # (method, path) -> why it skips the invalid-data check
# A body over the door's limit is refused as too large: that is a refusal too.
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
STATIC = {"tracking": "services/tracking/read/static", "intake": "services/intake/portal/static"}
ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
METHODS = ("get", "put", "post", "delete", "patch")
# Doors schemathesis leaves alone, why: a Server-Sent Events stream never ends its answer.
SKIPPED = {"notifications": [("GET", "/live/{folio}")]}
# A door that uses its value up draws from values of its own, so the others keep theirs.
OWN_VALUES = {"DELETE /webhooks/{hook_id}": ("path.hook_id", "spare_hook_ids")}
LINKS = Links("expediente-notification-links-dev", "http://localhost", "http://localhost")
PAYMENTS_SECRET = "st-fake-payments-secret"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("schemathesis"), ENV).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def known(stack) -> dict[str, Any]:
    return known_values(stack)


def known_values(stack: Stack) -> dict[str, Any]:
    """What the stack holds once a citizen reported with a photo and a supervisor opened a
    report: the values the cases draw on besides generated ones."""
    intake, tracking = stack.intake.url, stack.tracking.url
    ticket = requests.post(f"{intake}/api/v1/upload-tickets", timeout=10).json()["ticket"]
    picture = io.BytesIO()
    Image.new("RGB", (32, 24), "#7a1f3d").save(picture, "PNG")
    photo = requests.post(f"{intake}/api/v1/photos", data=picture.getvalue(), timeout=30,
                          headers={"X-Upload-Ticket": ticket, "Content-Type": "image/png"})
    assert photo.status_code == 201, photo.text
    codes = [s["code"] for s in requests.get(f"{intake}/api/v1/services", timeout=10).json()[
        "services"]]
    receipt = requests.post(f"{intake}/api/v1/reports", timeout=30, json={
        "service_code": "otro", "description": "Bache profundo frente al mercado",
        "location": {"lat": 20.5931, "long": -100.392}, "media_urls": [photo.json()["url"]]},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert receipt.status_code == 201, receipt.text
    opened = requests.post(f"{tracking}/reports", headers=admin(), timeout=30, json={
        "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
        "description": "Bache en la lateral", "location": {"lat": 20.6, "long": -100.4},
        "channel": "window"})
    assert opened.status_code == 201, opened.text
    names = [p.name for service in STATIC.values() for p in (ROOT / service).iterdir()]
    crews = stack.crews.url
    crew = requests.post(f"{crews}/crews", headers=admin(), timeout=30, json={
        "code": "C-01", "name": "Bacheo Centro", "department": "obras_publicas"})
    material = requests.post(f"{crews}/materials", headers=admin(), timeout=30, json={
        "code": "MEZ-ASF", "description": "Mezcla asfáltica", "unit": "m3",
        "unit_cost": "1850.00"})
    assert crew.status_code == material.status_code == 201, (crew.text, material.text)
    codes = [*codes, "C-01", "MEZ-ASF"]
    return {"ticket": ticket, "photo_url": photo.json()["url"], "codes": codes,
            "folios": [receipt.json()["folio"], opened.json()["folio"]],
            "access_token": receipt.json()["access_token"], "token": receipt.json()["token"],
            "names": [photo.json()["url"].rpartition("/")[2], *names]}


@pytest.fixture(scope="module")
def notifications(stack):
    """Notifications beside the stack, on its vhost and its database (a schema of its own,
    dropped with the stack's). Webhooks may point at this machine, over http."""
    env = {**stack.env, "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
    if stack.store == "sqlite":
        env["NOTIFICATIONS_SQLITE_DBNAME"] = str(stack.workdir / "notifications.sqlite")
    else:
        schema = stack.schemas["notifications"] = unique("e2e_notifications")
        with pg_connect() as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        env["NOTIFICATIONS_POSTGRES_DBNAME"] = env["TRACKING_POSTGRES_DBNAME"]
        env["NOTIFICATIONS_POSTGRES_SCHEMA"] = schema
    running = ServiceProcess("notifications", env)
    running.env["STATUS_PAGE_URL"] = f"{stack.tracking.url}/seguimiento"
    running.env["NOTIFICATIONS_PUBLIC_URL"] = running.url
    running.start()
    yield running
    running.stop()


def notifications_values(stack: Stack, url: str, known: dict[str, Any]) -> dict[str, Any]:
    """The known values, and notifications' own: a browser's push subscription, subscribed to a
    folio (its signed confirmation and opt-out links), and two webhooks (one for DELETE)."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    keys = {"p256dh": base64.urlsafe_b64encode(point).decode().rstrip("="),
            "auth": base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")}
    endpoint = f"https://push.example.net/send/{uuid.uuid4().hex}"
    pushed = requests.post(f"{url}/reports/{known['folios'][0]}/push", timeout=10, json={
        "subscription": {"endpoint": endpoint, "keys": keys}})
    assert pushed.status_code == 201, pushed.text
    [(subscription,)] = stack.query("notifications", "SELECT id FROM subscriptions WHERE "
                                    "address LIKE ?", (f"%{endpoint}%",))
    hooks = []
    for _ in range(2):
        hook = requests.post(f"{url}/webhooks", headers=admin(), timeout=10, json={
            "url": "http://127.0.0.1:9/avisos", "departments": ["obras_publicas"]})
        assert hook.status_code == 201, hook.text
        hooks.append(hook.json()["id"])
    return {**known, "links": [LINKS.token("confirm", subscription),
                               LINKS.token("opt-out", subscription)],
            "hook_ids": hooks[:1], "spare_hook_ids": hooks[1:]}


@pytest.fixture(scope="module")
def billing(stack, notifications, tmp_path_factory):
    """Billing beside the stack and notifications (the statements it sends go through it), on
    their vhost and database (a schema of its own, dropped with the stack's), with the local fake
    card gateway (deploy/local/fake_payments.py) for its checkouts."""
    payments = LocalServer(tmp_path_factory.mktemp("payments"), "fake_payments.py", "--secret",
                           PAYMENTS_SECRET).start()
    env = {**stack.env, "PAYMENTS_URL": payments.url, "PAYMENTS_SECRET": PAYMENTS_SECRET}
    if stack.store == "sqlite":
        env["BILLING_SQLITE_DBNAME"] = str(stack.workdir / "billing.sqlite")
    else:
        schema = stack.schemas["billing"] = unique("e2e_billing")
        with pg_connect() as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        env["BILLING_POSTGRES_DBNAME"] = env["TRACKING_POSTGRES_DBNAME"]
        env["BILLING_POSTGRES_SCHEMA"] = schema
    running = ServiceProcess("billing", env)
    running.env["BILLING_PUBLIC_URL"] = running.url
    try:
        running.start()
        yield running
    finally:
        running.stop()
        payments.stop()


BILLS = {"predial": ("14-001-0123-045", "7391"), "agua": ("AG-004512", "5521"),
         "multas": ("M-2026-000045", "ABC123D")}


def billing_values(url: str, known: dict[str, Any]) -> dict[str, Any]:
    """The known values, and billing's own: a predial account assessed, a water contract read
    and paid at the window (its payment reference), a fine."""
    opened = [{"kind": "predial", "key": BILLS["predial"][0], "check": BILLS["predial"][1],
               "holder": "María López", "description": "Av. Juárez 12",
               "cadastral_value": "850000.00"},
              {"kind": "agua", "key": BILLS["agua"][0], "check": BILLS["agua"][1],
               "holder": "Ana Ruiz", "description": "Calle 5 de Mayo 40",
               "initial_reading": "100"},
              {"kind": "multas", "key": BILLS["multas"][0], "check": BILLS["multas"][1],
               "holder": "Luis Mora", "description": "ABC123D", "plate": "ABC123D",
               "offence": "semaforo_rojo", "ticket_on": "2026-12-01"}]
    steps = [("/cuentas", account) for account in opened] + [
        (f"/cuentas/predial/{BILLS['predial'][0]}/emision", {"year": 2026}),
        (f"/cuentas/agua/{BILLS['agua'][0]}/lecturas", {"read_on": "2026-11-30",
                                                         "reading": "135"}),
        (f"/ventanilla/agua/{BILLS['agua'][0]}/pagos", {"reference": "V3-2026-000123",
                                                         "amount": "100.00"})]
    for path, body in steps:
        answer = requests.post(f"{url}{path}", json=body, headers=admin(), timeout=30)
        assert answer.status_code in (200, 201), answer.text
    return {**known, "kinds": list(BILLS), "keys": [key for key, _ in BILLS.values()],
            "checks": [check for _, check in BILLS.values()], "references": ["V3-2026-000123"]}


def admin() -> dict[str, str]:
    """An administrator's development token: every staff door lets it through."""
    return {"Authorization": f"Bearer {mint_token('schemathesis', ('admin',), ttl_seconds=3600)}"}


def settings(document: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """The run (schemathesis.toml): its seed and size, the checks, the credentials the document
    names, the known values, and the doors it leaves alone (SKIPPED)."""
    schemes = document["components"]["securitySchemes"]

    def documented(doors: Any) -> list[tuple[str, str]]:
        return [(method, path) for method, path in doors
                if method.lower() in document["paths"].get(path, {})]

    credentials = {
        "bearer": {"bearer": admin()["Authorization"].removeprefix("Bearer ")},
        "open311ApiKey": {"api_key": API_KEY},
        "chatbotSecret": {"api_key": CHATBOT_SECRET},
        "uploadTicket": {"api_key": known["ticket"]}}
    values = {"folios": known["folios"], "codes": known["codes"], "names": known["names"],
              "tokens": [known["token"], *known.get("links", [])],
              "access_tokens": [known["access_token"]], "photo_urls": [known["photo_url"]],
              "hook_ids": known.get("hook_ids", []),
              "spare_hook_ids": known.get("spare_hook_ids", []),
              "kinds": known.get("kinds", []), "keys": known.get("keys", []),
              "checks": known.get("checks", []), "references": known.get("references", [])}
    values = {name: entries for name, entries in values.items() if entries}
    offered = {"path.folio": "folios", "path.request_id": "folios", "path.code": "codes",
               "path.token": "tokens", "path.name": "names", "query.folio": "folios",
               "query.token": "access_tokens", "query.service_request_id": "folios",
               "body.service_code": "codes", "body.duplicate_of": "folios",
               "body.access_token": "access_tokens", "body.url": "photo_urls",
               "body.media_urls[*]": "photo_urls", "body.media_url": "photo_urls",
               "path.hook_id": "hook_ids", "path.kind": "kinds", "path.key": "keys",
               "query.kind": "kinds", "query.key": "keys", "body.kind": "kinds",
               "body.key": "keys", "query.check": "checks", "body.check": "checks",
               "path.reference": "references", "query.documento": "references"}
    own = {door: {key: {"dictionary": name, "probability": 0.6}}
           for door, (key, name) in OWN_VALUES.items()
           if name in values and documented([door.split(" ", 1)])}
    # by name ("GET /path"): include-method and include-path would match either
    operations = [{"include-name": f"{method} {path}", "checks": {
        "negative_data_rejection": {"enabled": False}}} for method, path in documented(LENIENT)]
    operations += [{"include-name": f"{method} {path}", "enabled": False}
                   for method, path in documented(sum(SKIPPED.values(), []))]
    operations += [{"include-name": door, "parameters": given} for door, given in own.items()]
    return {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "max-redirects": 0,  # a 303 is an answer to check, not a page to follow
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS},
                   "negative_data_rejection": {"enabled": True, "expected-statuses": REFUSED}},
        "auth": {"openapi": {name: given for name, given in credentials.items()
                             if name in schemes}},
        "operations": operations,
        "dictionaries": {name: {"values": entries} for name, entries in values.items()},
        "parameters": {key: {"dictionary": name, "probability": 0.6}
                       for key, name in offered.items() if name in values},
    }


def toml(value: Any) -> str:
    """`value` in TOML's inline syntax (a table at the top: one key per line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    pairs = [f"{json.dumps(key)} = {toml(item)}" for key, item in value.items()]
    return "{" + ", ".join(pairs) + "}"


@pytest.mark.parametrize("service", ["tracking", "intake", "crews", "notifications", "billing"])
def test_every_door_answers_as_its_document_says(stack, known, service, tmp_path, request):
    if service == "notifications":
        url = request.getfixturevalue("notifications").url
        known = notifications_values(stack, url, known)
    elif service == "billing":
        url = request.getfixturevalue("billing").url
        known = billing_values(url, known)
    else:
        url = getattr(stack, service).url
    returncode, output, ran, documented = schemathesis_run(url, known, tmp_path)
    print(output[output.find("SUMMARY"):])  # what ran and how long it took (pytest -s)
    assert returncode == 0, output[output.find("FAILURES"):][:20000]
    skipped = len(SKIPPED.get(service, []))
    assert ran["tested"] == ran["selected"] == documented - skipped, ran
    assert ran["total"] == documented, ran


def schemathesis_run(url: str, known: dict[str, Any], workdir: Path, **more: Any
                     ) -> tuple[int, str, dict[str, int], int]:
    """Schemathesis' own runner on the document `url` serves: (exit code, its report, the
    operations it ran, the operations the document has). `more` adds to the settings."""
    served = requests.get(f"{url}/openapi.json", timeout=30)
    assert served.status_code == 200, served.text
    (workdir / "openapi.json").write_bytes(served.content)
    (workdir / "schemathesis.toml").write_text("\n".join(
        f"{json.dumps(key)} = {toml(value)}"
        for key, value in {**settings(served.json(), known), **more}.items()))
    run = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", "schemathesis.toml", "run", "openapi.json",
         "--url", url, "--no-color", "--output-truncate", "true", "--report", "json",
         "--report-json-path", "report.json"],
        capture_output=True, text=True, timeout=900, cwd=workdir)
    ran = json.loads((workdir / "report.json").read_text())["operations"]
    documented = sum(m in METHODS for item in served.json()["paths"].values() for m in item)
    return run.returncode, run.stdout + run.stderr, ran, documented


# ---- what schemathesis found, kept as plain cases ----------------------------------------------


def test_a_folio_looked_up_with_a_line_break_is_sent_on_not_a_500(stack):
    """The portal put the folio it was asked for into `Location` as it came (seed 11)."""
    answer = requests.get(f"{stack.intake.url}/folio", params={"folio": "qro\r\nSet-Cookie: a=1"},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] == \
        f"{stack.tracking.url}/seguimiento/QRO%0D%0ASET-COOKIE%3A%20A%3D1"
    assert "Set-Cookie" not in answer.headers
