"""Billing refuses hostile input on PostgreSQL, the store production uses (it refuses what SQLite
keeps, U+0000 for one): every HTTP door of the running service, its citizens' pages, the payment
provider's callback and every RPC the window and the treasury call. Each refusal is a 4xx with a
clear error (field by field for a 400; a small page for the citizen's pages), never a 5xx, and
writes nothing: every table of billing's schema (the stored events, the lists, the checkouts, the
contacts, the imports) reads the same before and after. A bank file's bad rows are the one
exception by design: each is rejected with its line and reason, the good rows are applied and
the file's progress moves on.

The world: María's predial (assessed for 2026), Ana's water contract (read at 135 m³, paid 100.00
at the window as V3-2026-000123) and Luis's fine for a red light, and a checkout María opened
online that the provider has not called back about yet."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared.chassis.auth import mint_token
from tests.conftest import PG, unique
from tests.stack import create_vhost, delete_vhost, pg_connect
from tests.support import LocalServer, ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.postgres]

PAYMENTS_SECRET = "sk_test_billing_bad_input"
PREDIAL, AGUA, MULTA = "14-001-0123-045", "AG-004512", "M-2026-000045"
CHECKS = {"predial": "7391", "agua": "5521", "multas": "ABC123D"}
PAID = "V3-2026-000123"  # Ana's payment at the window, 100.00
NUL, SURROGATE = "\x00", "\ud800"
HUGE = "1" * 30  # more digits than a Decimal holds
TABLES = {"billing_events", "billing_account_index", "billing_payment_index", "billing_checkouts",
          "billing_contacts", "billing_imports", "billing_import_rejects", "billing_batches",
          "follower_positions", "repair_costs", "repair_cost_lines"}


# ---- billing, alone on PostgreSQL, beside the fake card gateway ---------------------------------


@dataclass
class Billing:
    """Billing as a `nameko run` process on a schema and a RabbitMQ virtual host of its own, and
    the local fake gateway (deploy/local/fake_payments.py) it opens checkouts at."""

    url: str
    amqp_uri: str
    schema: str
    payments: LocalServer
    process: ServiceProcess

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection of our own to billing's schema (read only, by the tests' manners)."""
        with pg_connect() as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            yield conn

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def settled(self) -> None:
        """Wait until the lists hold every stored event (their follower is at the log's end)."""
        def caught_up() -> bool:
            with self.connection() as conn:
                [(last,)] = conn.execute("SELECT max(notification_id) FROM billing_events")
                at = conn.execute("SELECT position FROM follower_positions "
                                  "WHERE name = 'billing'").fetchall()
            return last is None or bool(at) and at[0][0] >= last
        wait_for(caught_up, timeout=20, message="billing's lists to catch up")

    def log(self) -> str:
        assert self.process.log_path is not None
        return self.process.log_path.read_text(errors="replace")


@contextmanager
def billing_alone(workdir: Path, **env: str) -> Iterator[Billing]:
    """Billing and the fake gateway, up until the block ends; then their schema and vhost go.
    Nothing else runs: no tracking (the repair costs' catch-up) and no notifications (statements
    sent), which no refusal reaches."""
    vhost, schema = create_vhost(), unique("t_billing")
    with pg_connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    payments = LocalServer(workdir, "fake_payments.py", "--secret", PAYMENTS_SECRET,
                           "--log", str(workdir / "payments.jsonl"))
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    process = ServiceProcess("billing", {
        "AMQP_URI": amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.postgres",
        **{name: value for name, value in PG.items() if name != "POSTGRES_DBNAME"},
        "BILLING_POSTGRES_DBNAME": PG["POSTGRES_DBNAME"], "BILLING_POSTGRES_SCHEMA": schema,
        "PAYMENTS_SECRET": PAYMENTS_SECRET, "PAYMENTS_TIMEOUT": "5",
        "BILLING_POSTGRES_POOL_SIZE": "4", **env})  # one request at a time: a small pool
    try:
        payments.start()
        process.env["PAYMENTS_URL"] = payments.url
        process.env.setdefault("BILLING_PUBLIC_URL", process.url)
        process.start()
        yield Billing(process.url, amqp_uri, schema, payments, process)
    finally:
        process.stop()
        payments.stop()
        delete_vhost(vhost)
        with pg_connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def bearer(role: str, **claims: str) -> str:
    return f"Bearer {mint_token(f'test-{role}', (role,), **claims)}"


BEARERS: dict[str | None, str | None] = {
    None: None,
    "admin": bearer("admin"),
    "system": bearer("system"),
    "predial": bearer("billing_clerk", area="predial"),  # a clerk of each area
    "agua": bearer("billing_clerk", area="agua"),
    "multas": bearer("billing_clerk", area="multas"),
    "clerk": bearer("billing_clerk"),  # a clerk of no area
    "auditor": bearer("auditor"),
    "supervisor": bearer("supervisor", department="obras_publicas"),
    "crew": bearer("crew", crew_id="C-01"),
    "forged": "Bearer " + mint_token("test-admin", ("admin",), config={
        "JWT_SECRET": "not-the-city-s-key-but-long-enough-to-sign-with-0123456789"}),
    "expired": "Bearer " + mint_token("test-admin", ("admin",), ttl_seconds=-120),
    "garbage": "Bearer not.a.token",
}


@dataclass(frozen=True)
class World:
    """What billing holds before any hostile request."""

    checkout: str  # María's pending online payment
    amount: str


def must(answer: requests.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture(scope="module")
def billing(tmp_path_factory) -> Iterator[Billing]:
    with billing_alone(tmp_path_factory.mktemp("billing-bad-input")) as running:
        yield running


@pytest.fixture(scope="module")
def world(billing) -> World:
    admin = {"Authorization": BEARERS["admin"]}
    for account in (
            {"kind": "predial", "key": PREDIAL, "check": CHECKS["predial"],
             "holder": "María López", "description": "Av. Juárez 12, Centro",
             "cadastral_value": "850000.00"},
            {"kind": "agua", "key": AGUA, "check": CHECKS["agua"], "holder": "Ana Ruiz",
             "description": "Calle 5 de Mayo 40", "initial_reading": "100"},
            {"kind": "multas", "key": MULTA, "check": CHECKS["multas"], "holder": "Luis Mora",
             "description": "ABC123D", "plate": "ABC123D", "offence": "semaforo_rojo",
             "ticket_on": "2026-12-01"}):
        must(requests.post(f"{billing.url}/cuentas", json=account, headers=admin, timeout=20),
             201)
    must(requests.post(f"{billing.url}/cuentas/predial/{PREDIAL}/emision", json={"year": 2026},
                       headers=admin, timeout=20), 200)
    must(requests.post(f"{billing.url}/cuentas/agua/{AGUA}/lecturas", timeout=20, headers=admin,
                       json={"read_on": "2026-11-30", "reading": "135"}), 200)
    must(requests.post(f"{billing.url}/ventanilla/agua/{AGUA}/pagos", timeout=20,
                       json={"reference": PAID, "amount": "100.00"},
                       headers={"Authorization": BEARERS["agua"]}), 201)
    started = must(requests.post(f"{billing.url}/api/cuentas/predial/{PREDIAL}/pago",
                                 json={"check": CHECKS["predial"], "amount": "250.00"},
                                 timeout=20), 201)
    return World(started["reference"], started["amount"])


def snapshot(billing: Billing) -> dict[str, list[str]]:
    """Every row of every table of billing's schema, as text, once the lists are up to date."""
    billing.settled()
    with billing.connection() as conn:
        tables = {name for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (billing.schema,))}
        assert tables >= TABLES, TABLES - tables
        return {table: sorted(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
                for table in sorted(tables)}


# ---- HTTP: the JSON doors -----------------------------------------------------------------------


class Form(dict[str, str]):
    """A body sent as a browser's form."""


Body = dict[str, Any] | list[Any] | bytes | Form | None


def deep(levels: int) -> bytes:
    return b'{"check": ' + b"[" * levels + b"]" * levels + b"}"


def nonsense(method: str, path: str, role: str | None) -> list[tuple[Any, ...]]:
    """The bodies no JSON door takes: each a 400."""
    return [(f"{path} {name}", method, path, role, body, 400) for name, body in (
        ("not JSON", b"check=7391&amount=10.00"),
        ("not UTF-8", b'{"check": "\xff\xfe"}'),
        ("a list", [CHECKS["predial"]]),
        ("null", b"null"),
        ("a string", b'"7391"'),
        ("NaN", b'{"amount": NaN}'),
        ("nested", deep(100)),
    )]


def amounts(method: str, path: str, role: str | None, **rest: Any) -> list[tuple[Any, ...]]:
    """An amount written as no bill writes it: each a 400."""
    return [(f"{path} amount {name}", method, path, role, {**rest, "amount": amount}, 400)
            for name, amount in (
                ("a number", 100), ("a float", 100.5), ("thousands", "1,850.50"),
                ("a sign", "$10"), ("zero", "0"), ("zero cents", "0.00"), ("negative", "-1"),
                ("exponent", "1e3"), ("three decimals", "12.345"), ("huge", HUGE),
                ("over ten million", "10000000.01"), ("NaN", "NaN"), ("infinity", "Infinity"),
                ("blank", " "), ("NUL", "10.00" + NUL), ("surrogate", "10" + SURROGATE),
                ("full-width digits", "\uff11\uff10.00"), ("a list", ["10"]))]


CITIZEN = f"/api/cuentas/predial/{PREDIAL}"
CHECK = CHECKS["predial"]
WINDOW = f"/ventanilla/agua/{AGUA}"
OPEN = {"kind": "multas", "key": "M-2026-000099", "check": "XYZ987A", "holder": "Rosa Díaz",
        "description": "XYZ987A", "plate": "XYZ987A", "offence": "doble_fila",
        "ticket_on": "2026-12-02"}


def opening(**changed: Any) -> dict[str, Any]:
    """A fine to open with `changed` in it (None: without that field)."""
    return {key: value for key, value in {**OPEN, **changed}.items() if value is not None}


# (case, method, path, role, body, status)
HOSTILE: list[tuple[Any, ...]] = [
    # the citizen's statement: the kind, the key as printed, the check value
    ("wrong kind", "GET", f"/api/cuentas/luz/{PREDIAL}?check={CHECK}", None, None, 400),
    ("kind NUL", "GET", f"/api/cuentas/predial%00/{PREDIAL}?check={CHECK}", None, None, 400),
    ("key not as printed", "GET", f"/api/cuentas/predial/14-1-123-45?check={CHECK}", None, None,
     400),
    ("key of another kind", "GET", f"/api/cuentas/agua/{PREDIAL}?check={CHECK}", None, None,
     400),
    ("key NUL", "GET", f"{CITIZEN}%00?check={CHECK}", None, None, 400),
    ("key long", "GET", f"/api/cuentas/predial/{'1' * 5000}?check={CHECK}", None, None, 400),
    ("no check", "GET", CITIZEN, None, None, 400),
    ("check too long", "GET", f"{CITIZEN}?check=1234567890ABCDEFG", None, None, 400),
    ("check NUL", "GET", f"{CITIZEN}?check={CHECK}%00", None, None, 400),
    ("check newline", "GET", f"{CITIZEN}?check=73%0A91", None, None, 400),
    ("check escape", "GET", f"{CITIZEN}?check=%1B[2J", None, None, 400),
    ("check quote", "GET", f"{CITIZEN}?check=7'%20OR%20'1'='1", None, None, 400),
    ("check unknown field", "GET", f"{CITIZEN}?check={CHECK}&debug=1", None, None, 400),
    ("wrong check", "GET", f"{CITIZEN}?check=0000", None, None, 404),
    ("no such account", "GET", "/api/cuentas/predial/99-999-9999-999?check=7391", None, None,
     404),
    ("pdf wrong kind", "GET", f"/api/cuentas/luz/{PREDIAL}/estado.pdf?check={CHECK}", None,
     None, 400),
    ("pdf check NUL", "GET", f"{CITIZEN}/estado.pdf?check=%00", None, None, 400),
    ("pdf wrong check", "GET", f"{CITIZEN}/estado.pdf?check=0000", None, None, 404),
    # paying online: the amount as a bill writes it, and nothing opened for a wrong check
    *amounts("POST", f"{CITIZEN}/pago", None, check=CHECK),
    ("pay no check", "POST", f"{CITIZEN}/pago", None, {"amount": "10.00"}, 400),
    ("pay check NUL", "POST", f"{CITIZEN}/pago", None, {"check": CHECK + NUL}, 400),
    ("pay check surrogate", "POST", f"{CITIZEN}/pago", None, {"check": SURROGATE}, 400),
    ("pay check a number", "POST", f"{CITIZEN}/pago", None, {"check": 7391}, 400),
    ("pay check long", "POST", f"{CITIZEN}/pago", None, {"check": "7" * 17}, 400),
    ("pay unknown field", "POST", f"{CITIZEN}/pago", None,
     {"check": CHECK, "amount": "10.00", "return_url": "https://evil.example"}, 400),
    ("pay wrong check", "POST", f"{CITIZEN}/pago", None, {"check": "0000"}, 404),
    ("pay wrong kind", "POST", f"/api/cuentas/luz/{PREDIAL}/pago", None, {"check": CHECK}, 400),
    ("pay key not as printed", "POST", "/api/cuentas/agua/AG-12/pago", None, {"check": "5521"},
     400),
    ("pay too large", "POST", f"{CITIZEN}/pago", None,
     b'{"check": "' + b"7" * 3000 + b'"}', 413),
    *nonsense("POST", f"{CITIZEN}/pago", None),
    # the statement sent each month
    ("send by sms", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "sms", "phone": "+524421234567"}, 400),
    ("send email without email", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "email"}, 400),
    ("send not an email", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "email", "email": "ana at example"}, 400),
    ("send NUL email", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "email", "email": "ana@example.com" + NUL}, 400),
    ("send two-line email", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "email", "email": "ana@example.com\r\nBcc: x@evil.example"},
     400),
    ("send phone without country", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "whatsapp", "phone": "4421234567"}, 400),
    ("send unknown field", "POST", f"{CITIZEN}/envio", None,
     {"check": CHECK, "channel": "email", "email": "ana@example.com", "cc": "x@y.mx"}, 400),
    ("send wrong check", "POST", f"{CITIZEN}/envio", None,
     {"check": "0000", "channel": "email", "email": "ana@example.com"}, 404),
    ("send too large", "POST", f"{CITIZEN}/envio", None,
     b'{"email": "' + b"a" * 3000 + b'"}', 413),
    *nonsense("POST", f"{CITIZEN}/envio", None),
    # receipts
    ("receipt no such payment", "GET", "/api/pagos/NOPE-1?check=5521", None, None, 404),
    ("receipt wrong check", "GET", f"/api/pagos/{PAID}?check=0000", None, None, 404),
    ("receipt no check", "GET", f"/api/pagos/{PAID}", None, None, 400),
    ("receipt check NUL", "GET", f"/api/pagos/{PAID}?check=%00", None, None, 400),
    ("receipt reference NUL", "GET", "/api/pagos/%00?check=5521", None, None, 404),
    ("receipt reference long", "GET", f"/api/pagos/{'R' * 5000}?check=5521", None, None, 404),
    ("receipt pdf wrong check", "GET", f"/api/pagos/{PAID}/recibo.pdf?check=0000", None, None,
     404),
    ("receipt pdf check unknown field", "GET", f"/api/pagos/{PAID}/recibo.pdf?check=5521&x=1",
     None, None, 400),
    # the window: a clerk of the account's area, and what a payment at the window says
    ("window payment by another area", "POST", f"{WINDOW}/pagos", "predial",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 403),
    ("window payment by no area", "POST", f"{WINDOW}/pagos", "clerk",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 403),
    ("window payment by a supervisor", "POST", f"{WINDOW}/pagos", "supervisor",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 403),
    ("window payment by an auditor", "POST", f"{WINDOW}/pagos", "auditor",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 403),
    ("window payment without a token", "POST", f"{WINDOW}/pagos", None,
     {"reference": "V3-2026-000200", "amount": "10.00"}, 401),
    ("window payment forged", "POST", f"{WINDOW}/pagos", "forged",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 401),
    ("window payment expired", "POST", f"{WINDOW}/pagos", "expired",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 401),
    ("window payment garbage token", "POST", f"{WINDOW}/pagos", "garbage",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 401),
    *amounts("POST", f"{WINDOW}/pagos", "agua", reference="V3-2026-000200"),
    ("window reference NUL", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": "V3-2026" + NUL, "amount": "10.00"}, 400),
    ("window reference space", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": "V3 2026", "amount": "10.00"}, 400),
    ("window reference long", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": "V" * 65, "amount": "10.00"}, 400),
    ("window reference a number", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": 123, "amount": "10.00"}, 400),
    ("window no reference", "POST", f"{WINDOW}/pagos", "agua", {"amount": "10.00"}, 400),
    ("window no amount", "POST", f"{WINDOW}/pagos", "agua", {"reference": "V3-2026-000200"},
     400),
    ("window amount null", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": "V3-2026-000200", "amount": None}, 400),
    ("window unknown field", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": "V3-2026-000200", "amount": "10.00", "channel": "online"}, 400),
    ("window reference reused", "POST", f"{WINDOW}/pagos", "agua",
     {"reference": PAID, "amount": "5.00"}, 409),
    ("window wrong kind", "POST", f"/ventanilla/luz/{AGUA}/pagos", "admin",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 400),
    ("window key not as printed", "POST", "/ventanilla/agua/AG-1/pagos", "agua",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 400),
    ("window no such account", "POST", "/ventanilla/agua/AG-999999/pagos", "agua",
     {"reference": "V3-2026-000200", "amount": "10.00"}, 404),
    ("window payment too large", "POST", f"{WINDOW}/pagos", "agua",
     b'{"reference": "' + b"V" * 3000 + b'"}', 413),
    *nonsense("POST", f"{WINDOW}/pagos", "agua"),
    ("statement by another area", "GET", WINDOW, "multas", None, 403),
    ("statement without a token", "GET", WINDOW, None, None, 401),
    ("statement key NUL", "GET", f"{WINDOW}%00", "agua", None, 400),
    ("discount unknown reason", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos", "predial",
     {"reason": "amigo_del_alcalde"}, 400),
    ("discount reason as words", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos",
     "predial", {"reason": "Adulto Mayor"}, 400),
    ("discount reason NUL", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos", "predial",
     {"reason": "adulto_mayor" + NUL}, 400),
    ("discount unknown field", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos", "predial",
     {"reason": "adulto_mayor", "percent": 100}, 400),
    ("discount by another area", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos", "agua",
     {"reason": "adulto_mayor"}, 403),
    ("discount without a token", "POST", f"/ventanilla/predial/{PREDIAL}/descuentos", None,
     {"reason": "adulto_mayor"}, 401),
    *nonsense("POST", f"/ventanilla/predial/{PREDIAL}/descuentos", "predial"),
    ("reversal of an unknown reference", "POST", "/ventanilla/pagos/NOPE-1/cancelacion", "agua",
     {"reason": "cheque sin fondos"}, 404),
    ("reversal without a token", "POST", "/ventanilla/pagos/NOPE-1/cancelacion", None,
     {"reason": "cheque sin fondos"}, 401),
    ("reversal of a known one without a token", "POST",
     f"/ventanilla/pagos/{PAID}/cancelacion", None, {"reason": "cheque sin fondos"}, 401),
    ("reversal by another area", "POST", f"/ventanilla/pagos/{PAID}/cancelacion", "predial",
     {"reason": "cheque sin fondos"}, 403),
    ("reversal reference not a reference", "POST", "/ventanilla/pagos/a%20b/cancelacion",
     "agua", {"reason": "cheque sin fondos"}, 400),
    ("reversal reason short", "POST", f"/ventanilla/pagos/{PAID}/cancelacion", "agua",
     {"reason": "x"}, 400),
    ("reversal reason NUL", "POST", f"/ventanilla/pagos/{PAID}/cancelacion", "agua",
     {"reason": "cheque" + NUL + " sin fondos"}, 400),
    ("reversal reason long", "POST", f"/ventanilla/pagos/{PAID}/cancelacion", "agua",
     {"reason": "r" * 501}, 400),
    ("reversal unknown field", "POST", f"/ventanilla/pagos/{PAID}/cancelacion", "agua",
     {"reason": "cheque sin fondos", "amount": "100.00"}, 400),
    *nonsense("POST", f"/ventanilla/pagos/{PAID}/cancelacion", "agua"),
    ("receipt at the window without a token", "GET", "/ventanilla/pagos/NOPE-1/recibo.pdf",
     None, None, 401),
    ("receipt at the window unknown", "GET", "/ventanilla/pagos/NOPE-1/recibo.pdf", "agua",
     None, 404),
    ("receipt at the window by another area", "GET", f"/ventanilla/pagos/{PAID}/recibo.pdf",
     "predial", None, 403),
    ("contact by sms", "PUT", f"{WINDOW}/contacto", "agua",
     {"channel": "sms", "phone": "+524421234567"}, 400),
    ("contact whatsapp without phone", "PUT", f"{WINDOW}/contacto", "agua",
     {"channel": "whatsapp"}, 400),
    ("contact NUL phone", "PUT", f"{WINDOW}/contacto", "agua",
     {"channel": "whatsapp", "phone": "+524421234567" + NUL}, 400),
    ("contact unknown field", "PUT", f"{WINDOW}/contacto", "agua",
     {"channel": "email", "email": "ana@example.com", "name": "Ana"}, 400),
    ("contact by another area", "PUT", f"{WINDOW}/contacto", "multas",
     {"channel": "email", "email": "ana@example.com"}, 403),
    ("contact of no such account", "PUT", "/ventanilla/agua/AG-999999/contacto", "agua",
     {"channel": "email", "email": "ana@example.com"}, 404),
    ("contact too large", "PUT", f"{WINDOW}/contacto", "agua",
     b'{"email": "' + b"a" * 2000 + b'"}', 413),
    # the treasury: opening accounts and charging them
    ("open wrong kind", "POST", "/cuentas", "admin", opening(kind="luz"), 400),
    ("open key not as printed", "POST", "/cuentas", "admin", opening(key="M-26-45"), 400),
    ("open key of another kind", "POST", "/cuentas", "admin", opening(key=AGUA), 400),
    ("open fine without plate", "POST", "/cuentas", "admin", opening(plate=None), 400),
    ("open fine without offence", "POST", "/cuentas", "admin", opening(offence=None), 400),
    ("open fine without ticket", "POST", "/cuentas", "admin", opening(ticket_on=None), 400),
    ("open predial without value", "POST", "/cuentas", "admin",
     {"kind": "predial", "key": "14-001-0999-001", "check": "1234", "holder": "Pedro",
      "description": "Calle 1"}, 400),
    ("open predial value thousands", "POST", "/cuentas", "admin",
     {"kind": "predial", "key": "14-001-0999-001", "check": "1234", "holder": "Pedro",
      "description": "Calle 1", "cadastral_value": "850,000.00"}, 400),
    ("open water reading words", "POST", "/cuentas", "admin",
     {"kind": "agua", "key": "AG-009999", "check": "1234", "holder": "Pedro",
      "description": "Calle 1", "initial_reading": "cien"}, 400),
    ("open fine unknown offence", "POST", "/cuentas", "admin", opening(offence="volar_bajo"),
     400),
    ("open fine dated tomorrow", "POST", "/cuentas", "admin", opening(ticket_on="2099-01-01"),
     400),
    ("open fine of a year without rules", "POST", "/cuentas", "admin",
     opening(key="M-2019-000001", ticket_on="2019-05-01"), 400),
    ("open fine date not a date", "POST", "/cuentas", "admin", opening(ticket_on="ayer"), 400),
    ("open holder NUL", "POST", "/cuentas", "admin", opening(holder="Rosa" + NUL), 400),
    ("open holder surrogate", "POST", "/cuentas", "admin", opening(holder=SURROGATE), 400),
    ("open holder blank", "POST", "/cuentas", "admin", opening(holder="   "), 400),
    ("open holder long", "POST", "/cuentas", "admin", opening(holder="R" * 121), 400),
    ("open check control", "POST", "/cuentas", "admin", opening(check="XYZ\x07987"), 400),
    ("open plate lower case", "POST", "/cuentas", "admin", opening(plate="xyz987a"), 400),
    ("open unknown field", "POST", "/cuentas", "admin", opening(balance="0.00"), 400),
    ("open existing", "POST", "/cuentas", "admin", opening(key=MULTA), 409),
    ("open by another area", "POST", "/cuentas", "agua", opening(), 403),
    ("open without a token", "POST", "/cuentas", None, opening(), 401),
    ("open too large", "POST", "/cuentas", "admin", b'{"holder": "' + b"a" * 5000 + b'"}',
     413),
    *nonsense("POST", "/cuentas", "admin"),
    ("reading lower than the last", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "120"}, 400),
    ("reading before the last", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-11-01", "reading": "140"}, 400),
    ("reading negative", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "-1"}, 400),
    ("reading exponent", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "1e3"}, 400),
    ("reading a number", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": 150}, 400),
    ("reading unknown field", "POST", f"/cuentas/agua/{AGUA}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "150", "m3": "15"}, 400),
    ("reading of a predial key", "POST", f"/cuentas/agua/{PREDIAL}/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "150"}, 400),
    ("reading of no such contract", "POST", "/cuentas/agua/AG-999999/lecturas", "agua",
     {"read_on": "2026-12-05", "reading": "150"}, 404),
    ("reading by another area", "POST", f"/cuentas/agua/{AGUA}/lecturas", "predial",
     {"read_on": "2026-12-05", "reading": "150"}, 403),
    ("assess year as text", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": "2027"}, 400),
    ("assess year a float", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": 2027.0}, 400),
    ("assess year out of range", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": 1999}, 400),
    ("assess year without rules", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": 2030}, 400),
    ("assess twice", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": 2026}, 400),
    ("assess no year", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial", {}, 400),
    ("assess unknown field", "POST", f"/cuentas/predial/{PREDIAL}/emision", "predial",
     {"year": 2027, "rate_per_mil": 0}, 400),
    ("assess by another area", "POST", f"/cuentas/predial/{PREDIAL}/emision", "agua",
     {"year": 2027}, 403),
    *nonsense("POST", f"/cuentas/predial/{PREDIAL}/emision", "predial"),
    # the repair costs' readers
    ("costs by nothing", "GET", "/costs?by=everything", "admin", None, 400),
    ("costs since not a date", "GET", "/costs?by=crew&since=ayer", "admin", None, 400),
    ("costs until before since", "GET", "/costs?by=crew&since=2026-03-02T00:00:00Z"
     "&until=2026-03-01T00:00:00Z", "admin", None, 400),
    ("costs department NUL", "GET", "/costs?by=crew&department=%00", "admin", None, 400),
    ("costs unknown field", "GET", "/costs?by=crew&limit=5", "admin", None, 400),
    ("costs of another department", "GET", "/costs?by=crew&department=agua_potable",
     "supervisor", None, 403),
    ("costs by a crew", "GET", "/costs?by=crew", "crew", None, 403),
    ("costs without a token", "GET", "/costs?by=crew", None, None, 401),
    ("cost folio NUL", "GET", "/costs/reports/%00", "admin", None, 400),
    ("cost folio long", "GET", f"/costs/reports/{'Q' * 5000}", "admin", None, 400),
    ("cost of no such report", "GET", "/costs/reports/QRO-2026-999999", "admin", None, 404),
    ("cost without a token", "GET", "/costs/reports/QRO-2026-999999", None, None, 401),
]


def send(billing: Billing, method: str, path: str, role: str | None, body: Body,
         **headers: str) -> requests.Response:
    authorization = BEARERS[role]
    if authorization:
        headers["Authorization"] = authorization
    if isinstance(body, Form):
        return requests.request(method, billing.url + path, data=dict(body), headers=headers,
                                timeout=20, allow_redirects=False)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    return requests.request(method, billing.url + path, data=data, headers=headers, timeout=20,
                            allow_redirects=False)


@pytest.mark.parametrize(("case", "method", "path", "role", "body", "status"), HOSTILE,
                         ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_a_4xx_with_a_clear_error_that_writes_nothing(billing, world, case,
                                                                       method, path, role,
                                                                       body, status):
    before = snapshot(billing)

    answer = send(billing, method, path, role, body)

    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:300]
    error = answer.json()["error"]
    assert error["code"] and error["message"] and error["request_id"]
    if status in (400, 401, 403):
        assert answer.json()["errors"], answer.text  # which field, and what is wrong with it
    assert snapshot(billing) == before


# ---- HTTP: the provider's callback --------------------------------------------------------------


def signed(body: dict[str, Any] | bytes, *, at: float | None = None,
           secret: str = PAYMENTS_SECRET) -> tuple[bytes, str]:
    """The body and its X-Signature, as the provider signs a callback."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = int(time.time() if at is None else at)
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + data,
                         hashlib.sha256).hexdigest()
    return data, f"t={stamp},v1={signature}"


def word(world: World, **changed: Any) -> dict[str, Any]:
    """The provider's approval of María's checkout, with `changed` in it."""
    return {"id": "chk_1", "reference": world.checkout, "status": "approved",
            "amount": world.amount, "currency": "MXN", "authorization": "AUTH-123456",
            "paid_at": "2026-12-06T18:00:00Z", **changed}


def tampered(world: World) -> tuple[bytes, str]:
    data, signature = signed(word(world))
    return data.replace(world.amount.encode(), b"1.00"), signature


CALLBACKS: list[tuple[str, Any, int]] = [
    # (case, the body and X-Signature the provider would not send, status)
    ("no signature", lambda w: (json.dumps(word(w)).encode(), None), 400),
    ("signature garbage", lambda w: (json.dumps(word(w)).encode(), "garbage"), 400),
    ("signature without time", lambda w: (json.dumps(word(w)).encode(), "v1=abc"), 400),
    ("signature of another secret", lambda w: signed(word(w), secret="not-ours"), 400),
    ("signature an hour old", lambda w: signed(word(w), at=time.time() - 3600), 400),
    ("signature from the future", lambda w: signed(word(w), at=time.time() + 3600), 400),
    ("signature of another body", lambda w: (json.dumps(word(w)).encode(),
                                             signed(word(w, status="declined"))[1]), 400),
    ("tampered amount", tampered, 400),
    ("signed but another amount", lambda w: signed(word(w, amount="1.00")), 400),
    ("signed amount a number", lambda w: signed(word(w, amount=250)), 400),
    ("signed amount huge", lambda w: signed(word(w, amount=HUGE)), 400),
    ("signed status unknown", lambda w: signed(word(w, status="refunded")), 400),
    ("signed other currency", lambda w: signed(word(w, currency="USD")), 400),
    ("signed without authorization", lambda w: signed(word(w, authorization=None)), 400),
    ("signed paid_at naive", lambda w: signed(word(w, paid_at="2026-12-06T18:00:00")), 400),
    ("signed not JSON", lambda w: signed(b"reference=WEB-1&status=approved"), 400),
    ("signed a list", lambda w: signed(b"[]"), 400),
    ("signed unknown reference", lambda w: signed(word(w, reference="WEB-NOT-OURS")), 404),
    ("signed NUL reference", lambda w: signed(word(w, reference="WEB-1" + NUL)), 404),
    ("signed declined of another amount", lambda w: signed(word(
        w, status="declined", amount="1.00", authorization=None)), 400),
    ("too large", lambda w: signed(json.dumps(word(w, pad="x" * 9000)).encode()), 413),
]


@pytest.mark.parametrize(("case", "build", "status"), CALLBACKS,
                         ids=[case[0] for case in CALLBACKS])
def test_a_callback_the_provider_did_not_sign_as_it_is_refused_and_pays_nothing(
        billing, world, case, build, status):
    before = snapshot(billing)
    data, signature = build(world)

    answer = requests.post(f"{billing.url}/payments/callback", data=data, timeout=20,
                           headers={"Content-Type": "application/json",
                                    **({"X-Signature": signature} if signature else {})})

    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] and error["message"] and error["request_id"]
    assert snapshot(billing) == before
    [(state,)] = billing.query("SELECT status FROM billing_checkouts WHERE reference = %s",
                               (world.checkout,))
    assert state == "pending"


# ---- HTTP: the citizen's pages ------------------------------------------------------------------

LOOKUP = {"kind": "predial", "key": PREDIAL, "check": CHECK}

PAGES: list[tuple[str, str, str, Body, int]] = [
    # (case, method, path, body, status): a page, never a 500
    ("lookup nothing", "GET", "/pagos/cuenta", None, 404),
    ("lookup wrong kind", "GET", f"/pagos/cuenta?kind=luz&key={PREDIAL}&check={CHECK}", None,
     404),
    ("lookup kind markup", "GET", f"/pagos/cuenta?kind=%3Cscript%3E&key={PREDIAL}&check=1",
     None, 404),
    ("lookup key not as printed", "GET", f"/pagos/cuenta?kind=predial&key=14-1&check={CHECK}",
     None, 404),
    ("lookup key NUL", "GET", f"/pagos/cuenta?kind=predial&key=%00&check={CHECK}", None, 404),
    ("lookup key long", "GET", f"/pagos/cuenta?kind=predial&key={'1' * 5000}&check=1", None,
     404),
    ("lookup check NUL", "GET", f"/pagos/cuenta?kind=predial&key={PREDIAL}&check=%00", None,
     404),
    ("lookup check long", "GET", f"/pagos/cuenta?kind=predial&key={PREDIAL}&check={'7' * 99}",
     None, 404),
    ("lookup wrong check", "GET", f"/pagos/cuenta?kind=predial&key={PREDIAL}&check=0000", None,
     404),
    ("lookup unknown field", "GET", f"/pagos/cuenta?kind=predial&key={PREDIAL}&check={CHECK}"
     "&debug=1", None, 404),
    ("pay nothing", "POST", "/pagos/cuenta/pagar", Form(), 400),
    ("pay garbage", "POST", "/pagos/cuenta/pagar", Form(a="b", c="d"), 400),
    ("pay JSON", "POST", "/pagos/cuenta/pagar", json.dumps(LOOKUP).encode(), 400),
    ("pay wrong kind", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, kind="luz"), 400),
    ("pay check NUL", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, check=CHECK + NUL), 400),
    ("pay amount thousands", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount="1,850.50"),
     400),
    ("pay amount sign", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount="$10"), 400),
    ("pay amount zero", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount="0"), 400),
    ("pay amount negative", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount="-1"), 400),
    ("pay amount exponent", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount="1e3"), 400),
    ("pay amount huge", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount=HUGE), 400),
    ("pay amount empty", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, amount=""), 400),
    ("pay unknown field", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, tip="5.00"), 400),
    ("pay wrong check", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, check="0000"), 404),
    ("pay too large", "POST", "/pagos/cuenta/pagar", Form(LOOKUP, pad="x" * 3000), 413),
    ("send nothing", "POST", "/pagos/cuenta/enviar", Form(), 400),
    ("send by fax", "POST", "/pagos/cuenta/enviar", Form(LOOKUP, channel="fax"), 400),
    ("send email NUL", "POST", "/pagos/cuenta/enviar",
     Form(LOOKUP, channel="email", email="ana@example.com" + NUL), 400),
    ("send wrong check", "POST", "/pagos/cuenta/enviar",
     Form(LOOKUP, check="0000", channel="email", email="ana@example.com"), 404),
    ("return without reference", "GET", "/pagos/retorno", None, 400),
    ("return reference NUL", "GET", "/pagos/retorno?reference=%00", None, 400),
    ("return unknown field", "GET", "/pagos/retorno?reference=WEB-1&x=1", None, 400),
    ("verify garbage", "GET", "/verificar?documento=%00&codigo=%00", None, 400),
    ("verify a made-up code", "GET", f"/verificar?documento={PAID}&codigo=ABCD-EFGH-IJKL-MNOP",
     None, 200),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status"), PAGES,
                         ids=[case[0] for case in PAGES])
def test_a_citizen_s_bad_lookup_or_form_is_a_page_that_changes_nothing(billing, world, case,
                                                                       method, path, body,
                                                                       status):
    before = snapshot(billing)

    answer = send(billing, method, path, None, body)

    assert answer.status_code == status, answer.text[:500]
    if status != 413:  # refused by the chassis before the door: its JSON
        assert answer.headers["Content-Type"].startswith("text/html"), answer.text[:300]
        assert "Location" not in answer.headers
    assert snapshot(billing) == before


def test_the_right_key_and_check_value_still_open_the_statement(billing, world):
    """The doors above refused what they should, not everything."""
    answer = requests.get(f"{billing.url}/pagos/cuenta", params=LOOKUP, timeout=20)
    assert answer.status_code == 200 and PREDIAL in answer.text
    answer = requests.get(f"{billing.url}{CITIZEN}", params={"check": CHECK}, timeout=20)
    assert answer.status_code == 200 and answer.json()["account"]["key"] == PREDIAL


# ---- RPC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxies(billing) -> Iterator[dict[str | None, Any]]:
    """One RPC proxy per caller, opened once."""
    opened = {role: ClusterRpcProxy({"AMQP_URI": billing.amqp_uri}, timeout=20,
                                    context_data={"authorization": authorization}
                                    if authorization else {})
              for role, authorization in BEARERS.items()}
    yield {role: proxy.start() for role, proxy in opened.items()}
    for proxy in opened.values():
        proxy.stop()


PAYMENT = {"reference": "V3-2026-000300", "amount": "10.00"}
GOOD_ROW = {"row": 2, "referencia": "BNK-0001", "fecha": "2026-12-01", "concepto": "agua",
            "cuenta": AGUA, "importe": "10.00"}
FILE_ID = "c0ffee" * 10 + "c0ff"


def chunk(**changed: Any) -> tuple[Any, ...]:
    given = {"file_id": FILE_ID, "filename": "banco-2026-12-01.csv", "rows_total": 10,
             "first_row": 0, "rows": [GOOD_ROW], **changed}
    return tuple(given.values())


def rpc_amounts(role: str) -> list[tuple[Any, ...]]:
    return [(f"window_payment amount {amount!r}", "window_payment",
             ("agua", AGUA, {**PAYMENT, "amount": amount}), role, "invalid_input")
            for amount in (100, 100.5, "1,850.50", "$10", "0", "-1", "1e3", "12.345", HUGE,
                           None, "10.00" + NUL)]


RPC_HOSTILE: list[tuple[Any, ...]] = [
    # (case, method, args, role, code)
    ("window statement wrong kind", "window_statement", ("luz", AGUA), "agua", "invalid_input"),
    ("window statement another area", "window_statement", ("agua", AGUA), "predial",
     "forbidden"),
    ("window statement nobody", "window_statement", ("agua", AGUA), None, "unauthenticated"),
    ("window statement no such account", "window_statement", ("agua", "AG-999999"), "agua",
     "not_found"),
    *rpc_amounts("agua"),
    ("window payment a string", "window_payment", ("agua", AGUA, "100.00"), "agua",
     "invalid_input"),
    ("window payment a list", "window_payment", ("agua", AGUA, [PAYMENT]), "agua",
     "invalid_input"),
    ("window payment key NUL", "window_payment", ("agua", AGUA + NUL, PAYMENT), "agua",
     "invalid_input"),
    ("window payment key a number", "window_payment", ("agua", 4512, PAYMENT), "agua",
     "invalid_input"),
    ("window payment unknown field", "window_payment",
     ("agua", AGUA, {**PAYMENT, "by": "someone else"}), "agua", "invalid_input"),
    ("window payment another area", "window_payment", ("agua", AGUA, PAYMENT), "multas",
     "forbidden"),
    ("window payment nobody", "window_payment", ("agua", AGUA, PAYMENT), None,
     "unauthenticated"),
    ("window payment forged", "window_payment", ("agua", AGUA, PAYMENT), "forged",
     "unauthenticated"),
    ("window payment reused", "window_payment", ("agua", AGUA, {"reference": PAID,
                                                                 "amount": "1.00"}),
     "agua", "reference_reused"),
    ("discount unknown reason", "grant_discount", ("predial", PREDIAL, {"reason": "amigos"}),
     "predial", "invalid_command"),
    ("discount a string", "grant_discount", ("predial", PREDIAL, "adulto_mayor"), "predial",
     "invalid_input"),
    ("discount another area", "grant_discount", ("predial", PREDIAL,
                                                 {"reason": "adulto_mayor"}), "agua",
     "forbidden"),
    ("reversal unknown reference", "reverse_payment", ("NOPE-1", {"reason": "cheque"}), "agua",
     "not_found"),
    ("reversal NUL reference", "reverse_payment", ("NOPE" + NUL, {"reason": "cheque"}), "agua",
     "invalid_input"),
    ("reversal nobody", "reverse_payment", (PAID, {"reason": "cheque sin fondos"}), None,
     "unauthenticated"),
    ("reversal unknown nobody", "reverse_payment", ("NOPE-1", {"reason": "cheque"}), None,
     "unauthenticated"),
    ("reversal another area", "reverse_payment", (PAID, {"reason": "cheque sin fondos"}),
     "predial", "forbidden"),
    ("reversal reason a number", "reverse_payment", (PAID, {"reason": 42}), "agua",
     "invalid_input"),
    ("contact NUL email", "set_statement_contact",
     ("agua", AGUA, {"channel": "email", "email": NUL}), "agua", "invalid_input"),
    ("contact no such account", "set_statement_contact",
     ("agua", "AG-999999", {"channel": "email", "email": "ana@example.com"}), "agua",
     "not_found"),
    ("open missing per-kind fields", "open_account", (opening(plate=None, offence=None),),
     "admin", "invalid_input"),
    ("open predial without value", "open_account", (
        {"kind": "predial", "key": "14-001-0999-001", "check": "1234", "holder": "Pedro",
         "description": "Calle 1"},), "admin", "invalid_input"),
    ("open unknown offence", "open_account", (opening(offence="volar_bajo"),), "admin",
     "invalid_command"),
    ("open a string", "open_account", ("M-2026-000099",), "admin", "invalid_input"),
    ("open null", "open_account", (None,), "admin", "invalid_input"),
    ("open another area", "open_account", (opening(),), "predial", "forbidden"),
    ("open existing", "open_account", (opening(key=MULTA),), "admin", "already_exists"),
    ("assess year as text", "assess_predial", (PREDIAL, "2027"), "predial", "invalid_input"),
    ("assess key NUL", "assess_predial", (NUL, 2027), "predial", "invalid_input"),
    ("assess twice", "assess_predial", (PREDIAL, 2026), "predial", "invalid_command"),
    ("assess no such account", "assess_predial", ("99-999-9999-999", 2027), "predial",
     "not_found"),
    ("reading lower than the last", "record_reading",
     (AGUA, {"read_on": "2026-12-05", "reading": "120"}), "agua", "invalid_command"),
    ("reading a list", "record_reading", (AGUA, ["2026-12-05", "150"]), "agua",
     "invalid_input"),
    ("reading another area", "record_reading",
     (AGUA, {"read_on": "2026-12-05", "reading": "150"}), "multas", "forbidden"),
    ("import status not hex", "bank_import_status", ("banco.csv",), "system", "invalid_input"),
    ("import status upper hex", "bank_import_status", (FILE_ID.upper(),), "system",
     "invalid_input"),
    ("import status NUL", "bank_import_status", (NUL * 64,), "system", "invalid_input"),
    ("import status null", "bank_import_status", (None,), "system", "invalid_input"),
    ("import status as a clerk", "bank_import_status", (FILE_ID,), "agua", "forbidden"),
    ("import status nobody", "bank_import_status", (FILE_ID,), None, "unauthenticated"),
    ("import file_id not hex", "import_bank_rows", chunk(file_id="z" * 64), "system",
     "invalid_input"),
    ("import file_id short", "import_bank_rows", chunk(file_id="ab"), "system",
     "invalid_input"),
    ("import filename NUL", "import_bank_rows", chunk(filename="banco" + NUL + ".csv"),
     "system", "invalid_input"),
    ("import rows_total text", "import_bank_rows", chunk(rows_total="10"), "system",
     "invalid_input"),
    ("import first_row negative", "import_bank_rows", chunk(first_row=-1), "system",
     "invalid_input"),
    ("import first_row ahead", "import_bank_rows", chunk(first_row=5), "system",
     "invalid_input"),
    ("import rows not a list", "import_bank_rows", chunk(rows=GOOD_ROW), "system",
     "invalid_input"),
    ("import a row a string", "import_bank_rows", chunk(rows=[GOOD_ROW, "BNK-2,..."]), "system",
     "invalid_input"),
    ("import a row without its line", "import_bank_rows",
     chunk(rows=[GOOD_ROW, {"referencia": "BNK-2"}]), "system", "invalid_input"),
    ("import a row on line 10^12", "import_bank_rows",
     chunk(rows=[GOOD_ROW, {**GOOD_ROW, "row": 10**12}]), "system", "invalid_input"),
    ("import a row on line true", "import_bank_rows",
     chunk(rows=[{**GOOD_ROW, "row": True}]), "system", "invalid_input"),
    ("import 1001 rows", "import_bank_rows",
     chunk(rows=[{**GOOD_ROW, "row": n} for n in range(2, 1003)], rows_total=2000), "system",
     "invalid_input"),
    ("import as a clerk", "import_bank_rows", chunk(), "agua", "forbidden"),
    ("import as an auditor", "import_bank_rows", chunk(), "auditor", "forbidden"),
    ("batch month 13", "statement_batch", ("2026-13",), "system", "invalid_input"),
    ("batch short year", "statement_batch", ("26-12",), "system", "invalid_input"),
    ("batch one-digit month", "statement_batch", ("2026-1",), "system", "invalid_input"),
    ("batch period NUL", "statement_batch", ("2026-1" + NUL,), "system", "invalid_input"),
    ("batch period a number", "statement_batch", (202612,), "system", "invalid_input"),
    ("batch wrong kind", "statement_batch", ("2026-12", "luz"), "system", "invalid_input"),
    ("batch start_after nonsense", "statement_batch", ("2026-12", None, "nocolon"), "system",
     "invalid_input"),
    ("batch start_after NUL", "statement_batch", ("2026-12", None, "agua:" + NUL), "system",
     "invalid_input"),
    ("batch limit 0", "statement_batch", ("2026-12", None, None, 0), "system", "invalid_input"),
    ("batch limit 1001", "statement_batch", ("2026-12", None, None, 1001), "system",
     "invalid_input"),
    ("batch limit text", "statement_batch", ("2026-12", None, None, "10"), "system",
     "invalid_input"),
    ("batch as a clerk", "statement_batch", ("2026-12",), "predial", "forbidden"),
    ("reconcile negative", "reconcile_checkouts", (-1,), "system", "invalid_input"),
    ("reconcile text", "reconcile_checkouts", ("15",), "system", "invalid_input"),
    ("reconcile a year", "reconcile_checkouts", (600000,), "system", "invalid_input"),
    ("reconcile as a clerk", "reconcile_checkouts", (15,), "agua", "forbidden"),
    ("collected not a day", "collected", ("ayer", "2026-12-31"), "auditor", "invalid_input"),
    ("collected NUL", "collected", ("2026-12-01", NUL), "auditor", "invalid_input"),
    ("collected null", "collected", (None, "2026-12-31"), "auditor", "invalid_input"),
    ("collected by a supervisor", "collected", ("2026-12-01", "2026-12-31"), "supervisor",
     "forbidden"),
    ("cost folio NUL", "repair_cost", (NUL,), "admin", "invalid_input"),
    ("cost no such report", "repair_cost", ("QRO-2026-999999",), "admin", "not_found"),
    ("costs by nothing", "repair_costs", ("everything",), "admin", "invalid_input"),
    ("costs since not a date", "repair_costs", ("crew", "ayer"), "admin", "invalid_input"),
    ("costs by a crew", "repair_costs", ("crew",), "crew", "forbidden"),
]


@pytest.mark.parametrize(("case", "method", "args", "role", "code"), RPC_HOSTILE,
                         ids=[case[0] for case in RPC_HOSTILE])
def test_a_hostile_rpc_call_is_a_wire_error_that_writes_nothing(billing, world, proxies, case,
                                                                method, args, role, code):
    before = snapshot(billing)

    reply = getattr(proxies[role].billing, method).call_async(*args)
    with pytest.raises(RemoteError):
        reply.result()

    error = reply.resp_body["error"]
    assert error.get("code") == code, error  # a code of the wire, never a class name
    assert error["message"] and (code != "invalid_input" or error["fields"]), error
    assert snapshot(billing) == before


# ---- the bank's file: bad rows rejected one by one, the good ones applied --------------------


def test_a_bank_chunk_with_garbage_rows_applies_the_good_ones_and_moves_on(billing, world,
                                                                           proxies):
    """The bank sent a file whose lines 3-13 are wrong, each in its own way: each is rejected
    with its line and reason (stored as text PostgreSQL keeps, escaped), lines 2 and 14 are
    paid, line 15 (a payment applied before) is a duplicate, and the file got to row 14."""
    rows = [
        {**GOOD_ROW, "row": 2, "referencia": "BNK-0002"},
        {**GOOD_ROW, "row": 3, "referencia": "BNK" + NUL},
        {**GOOD_ROW, "row": 4, "referencia": "BNK-0004", "ref\x00x": "?"},
        {**GOOD_ROW, "row": 5, "referencia": "BNK-0005", SURROGATE: "?"},
        {**GOOD_ROW, "row": 6, "referencia": "BNK-0006", "fecha": "31/02/2026"},
        {**GOOD_ROW, "row": 7, "referencia": "BNK-0007", "importe": "1,850.50"},
        {**GOOD_ROW, "row": 8, "referencia": "BNK-0008", "importe": 10},
        {**GOOD_ROW, "row": 9, "referencia": "BNK-0009", "concepto": "luz"},
        {**GOOD_ROW, "row": 10, "referencia": "BNK-0010", "cuenta": "AG-12"},
        {**GOOD_ROW, "row": 11, "referencia": "BNK-0011", "cuenta": "AG-999999"},
        {**GOOD_ROW, "row": 12, "referencia": PAID, "importe": "1.00"},  # reused
        {"row": 13, "error": "the line is not valid CSV (check its quotes)"},
        {**GOOD_ROW, "row": 14, "referencia": "BNK-0014", "importe": "25.50"},
        {**GOOD_ROW, "row": 15, "referencia": PAID, "importe": "100.00"},  # applied before
    ]
    file_id = "b" * 64
    payments = billing.query("SELECT count(*) FROM billing_events WHERE topic LIKE %s",
                             ("%PaymentReceived",))[0][0]

    answer = proxies["system"].billing.import_bank_rows(file_id, "banco.csv", 20, 0, rows)

    assert (answer["rows_done"], answer["applied"], answer["duplicates"]) == (14, 2, 1)
    assert sorted(reject["row"] for reject in answer["rejected"]) == list(range(3, 14))
    for reject in answer["rejected"]:
        assert reject["error"] and NUL not in reject["error"], reject
    assert billing.query("SELECT count(*) FROM billing_events WHERE topic LIKE %s",
                         ("%PaymentReceived",))[0][0] == payments + 2
    stored = dict(billing.query("SELECT row_number, error FROM billing_import_rejects "
                                "WHERE file_id = %s", (file_id,)))
    assert sorted(stored) == list(range(3, 14))
    assert "\\x00" in stored[4] and "\\ud800" in stored[5]
    status = proxies["system"].billing.bank_import_status(file_id)
    assert (status["rows_done"], status["applied"], status["rejected"]) == (14, 2, 11)

    # The same chunk again (the CLI resumed from before it): nothing lands twice.
    before = snapshot(billing)
    again = proxies["system"].billing.import_bank_rows(file_id, "banco.csv", 20, 0, rows)
    assert (again["rows_done"], again["applied"], again["duplicates"]) == (14, 0, 3)
    assert snapshot(billing) == before


def test_no_refusal_above_was_a_failure_in_the_service_s_log(billing, world):
    """Every refusal was expected: nothing failed inside (a 500's traceback, a NUL that reached
    PostgreSQL)."""
    log = billing.log()
    for sign in ("Traceback", "failed (request", "NUL (0x00)", "DataError"):
        assert sign not in log, log[log.find(sign) - 2000:log.find(sign) + 2000]
