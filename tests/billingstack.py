"""A running system with billing: tests/notifystack.py's tracking, intake, crews and
notifications (with the SMTP sink), plus billing as a real `nameko run` process on a PostgreSQL
schema of its own (or a SQLite file), and the local fake card gateway
(deploy/local/fake_payments.py) it opens checkouts at and hears back from.

The gateway's callbacks reach billing through a relay in the test process, which a test can tell
to lose them (as a network in between would): the case billing's reconciliation is for."""

from __future__ import annotations

import io
import shutil
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from nameko.standalone.rpc import ClusterRpcProxy
from pypdf import PdfReader

from services.billing.rulesfile import RULES
from shared.chassis.auth import mint_token
from tests.conftest import unique
from tests.notifystack import NotificationsStack
from tests.stack import pg_connect
from tests.support import LocalServer, ServiceProcess, free_port

PAYMENTS_SECRET = "sk_e2e_fake_payments"
CITY = ZoneInfo("America/Mexico_City")
# The year a test assesses: next year's predial, whose January discount (15 %) is always ahead.
NEXT_YEAR = datetime.now(CITY).year + 1


def bearer(role: str, **claims: str) -> str:
    """`Bearer <token>` for a test user of `role` (a clerk's `area`, a supervisor's
    `department`...)."""
    return f"Bearer {mint_token(f'e2e-{role}', (role,), **claims)}"


def clerk(area: str) -> dict[str, str]:
    """HTTP headers of a billing clerk of `area` (predial, agua or multas)."""
    return {"Authorization": bearer("billing_clerk", area=area)}


def rules_env(workdir: Path) -> dict[str, str]:
    """BILLING_RULES_DIR when the shipped rules lack this or next year: a copy of them plus that
    year's files, each the latest year's with its dates moved (so the tests never expire)."""
    shipped = sorted(RULES.glob("*.yaml"))
    needed = {f"{path.stem.rsplit('-', 1)[0]}-{year}.yaml"
              for path in shipped for year in (NEXT_YEAR - 1, NEXT_YEAR)}
    if needed <= {path.name for path in shipped}:
        return {}
    folder = workdir / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    for path in shipped:
        shutil.copy(path, folder / path.name)
    for name in sorted(needed - {path.name for path in shipped}):
        concept, year = name.removesuffix(".yaml").rsplit("-", 1)
        latest = max(p for p in shipped if p.stem.rsplit("-", 1)[0] == concept)
        was = latest.stem.rsplit("-", 1)[1]
        (folder / name).write_text(latest.read_text().replace(was, year))
    return {"BILLING_RULES_DIR": str(folder)}


class CallbackRelay:
    """Passes each POST on to billing (`target`), or, while `losing`, answers 503 to it as a
    network in between that lost it: the gateway retries, then gives up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = ""
        self.losing = False
        self.lost: list[str] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if relay.losing:
                    relay.lost.append(self.path)
                    status, answer = 503, b'{"error": "lost on the way"}'
                else:
                    status, answer = relay.forward(self.path, body, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    def forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        kept = {name: value for name, value in headers.items()
                if name.lower() in ("content-type", "x-signature")}
        request = urllib.request.Request(f"{self.target}{path}", data=body, headers=kept)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 502, b'{"error": "billing did not answer"}'

    def start(self) -> CallbackRelay:
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(5)
            self.thread = None
        self.server.server_close()

    @contextmanager
    def losing_callbacks(self) -> Iterator[None]:
        self.losing = True
        try:
            yield
        finally:
            self.losing = False


class BillingStack(NotificationsStack):
    """The NotificationsStack plus the fake payments gateway and billing. Billing sends the
    citizen back to itself; the gateway's callbacks come to it through `relay`."""

    def __init__(self, workdir: Path, billing_env: dict[str, str] | None = None,
                 store: str | None = None) -> None:
        super().__init__(workdir, store=store)
        self.payments = LocalServer(workdir, "fake_payments.py", "--secret", PAYMENTS_SECRET,
                                    "--log", str(workdir / "payments.jsonl"))
        self.relay = CallbackRelay()
        self.billing_schema = unique("e2e_billing")
        env = {**self.env, "PAYMENTS_URL": self.payments.url,
               "PAYMENTS_SECRET": PAYMENTS_SECRET, "PAYMENTS_TIMEOUT": "5",
               "BILLING_CALLBACK_URL": self.relay.url, **rules_env(workdir),
               **(billing_env or {})}
        if self.store == "sqlite":
            env["BILLING_SQLITE_DBNAME"] = str(workdir / "billing.sqlite")
        else:
            env["BILLING_POSTGRES_DBNAME"] = env.get("TRACKING_POSTGRES_DBNAME", "test")
            env["BILLING_POSTGRES_SCHEMA"] = self.billing_schema
            with pg_connect() as conn:
                conn.execute(f"CREATE SCHEMA {self.billing_schema}")
        self.schemas["billing"] = self.billing_schema
        self.billing = ServiceProcess("billing", env)
        self.billing.env.setdefault("BILLING_PUBLIC_URL", self.billing.url)
        self.relay.target = self.billing.url

    def start(self) -> BillingStack:
        try:
            self.relay.start()
            self.payments.start()
            super().start()
            self.billing.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.billing.stop()
        self.payments.stop()
        self.relay.stop()
        super().stop()  # drops every schema in self.schemas, billing's too

    # ---- talking to billing -------------------------------------------------------------------

    @contextmanager
    def billing_rpc(self, role: str = "system", timeout: float = 60,
                    **claims: str) -> Iterator[Any]:
        """billing's RPC proxy, as a caller of `role` (a clerk: area=...), for many calls."""
        context = {"authorization": bearer(role, **claims)}
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, context_data=context,
                             timeout=timeout) as proxy:
            yield proxy.billing

    def rpc(self, method: str, *args: Any, role: str = "system", timeout: float = 60,
            **claims: str) -> Any:
        """billing.<method>(*args) over RabbitMQ, once, as a caller of `role`."""
        with self.billing_rpc(role, timeout, **claims) as billing:
            return getattr(billing, method)(*args)

    def statement(self, kind: str, key: str, check: str) -> dict[str, Any]:
        """What the citizen reads at GET /api/cuentas/<kind>/<key>?check=..."""
        answer = requests.get(f"{self.billing.url}/api/cuentas/{kind}/{key}",
                              params={"check": check}, timeout=10)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def balance(self, kind: str, key: str, check: str) -> str:
        return str(self.statement(kind, key, check)["totals"]["balance"])

    # ---- the fake gateway ---------------------------------------------------------------------

    def payments_mode(self, **mode: Any) -> None:
        requests.post(f"{self.payments.url}/_mode", json=mode, timeout=5).raise_for_status()

    def checkout_of(self, reference: str) -> dict[str, Any]:
        """The gateway's record of a checkout (its status, its callback deliveries)."""
        answer = requests.get(f"{self.payments.url}/_checkouts", timeout=5)
        answer.raise_for_status()
        return next(found for found in answer.json() if found["reference"] == reference)

    # ---- billing's store ----------------------------------------------------------------------

    def billing_events(self, topic_suffix: str = "") -> list[tuple[str, int, str]]:
        """(originator id, version, topic) of the events billing stored, stream by stream; only
        the topics ending in `topic_suffix` (e.g. "PaymentReceived") if given."""
        table = "billing_events" if "billing_events" in self.tables("billing") \
            else "stored_events"
        rows = self.query("billing", f"SELECT originator_id, originator_version, topic "
                                     f"FROM {table}")  # noqa: S608 (a fixed name)
        found = sorted((str(uuid.UUID(str(originator))), int(version), str(topic))
                       for originator, version, topic in rows)  # SQLite keeps the hex only
        return [row for row in found if row[2].endswith(topic_suffix)]


def pdf_text(data: bytes) -> str:
    """Every page's text of a PDF, joined."""
    assert data.startswith(b"%PDF-"), data[:40]
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
