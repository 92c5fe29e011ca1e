"""Webhooks against real HTTP servers: the local receiver of deploy/local/webhook_receiver.py, run
as its own process and verifying signatures as a municipal system would, and endpoints of the
test's own in this process for the answers the receiver does not give (redirects, 4xx, TLS).
A verified event is "sent"; a receiver that fails once gets it again and takes it; a stopped one
means "retry"; a redirect is never followed; the connection goes to the address that was checked,
and TLS still speaks to — and verifies — the endpoint's name."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from services.notifications.webhooks import WebhookSender, new_secret
from shared.contracts.cloudevents import CONTENT_TYPE, CloudEvent
from tests.support import ROOT, LocalServer

pytestmark = pytest.mark.integration

RECEIVER = ROOT / "deploy" / "local" / "webhook_receiver.py"
FOLIO = "QRO-2026-000123"
EN_ROUTE = CloudEvent(
    id="0d9f6a52-6f7e-5d0a-9a43-1f0c2b3d4e5f", source="/expediente/tracking",
    type="mx.expediente.report.crew_en_route", subject=FOLIO,
    time=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
    data={"folio": FOLIO, "service_name": "Bache en la vía pública",
          "eta": "2026-12-01T16:25:00+00:00"}, sequence="41", extensions={"streamversion": 5})
MESSAGE_ID = f"{EN_ROUTE.id}:sub-7"
# Development settings: the receiver listens on this machine, over plain HTTP.
LOOPBACK = WebhookSender(5, allow_http=True, allow_private=True)


class Receiver(LocalServer):
    """One webhook_receiver.py process on a free port, knowing `secrets`."""

    def __init__(self, folder: Path, secrets: list[str], *options: str) -> None:
        self.journal = folder / "received.jsonl"
        super().__init__(folder, "webhook_receiver.py", "--log", str(self.journal),
                         *(f"--secret={secret}" for secret in secrets), *options)
        self.start()

    def hook_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/expediente/avisos"

    def received(self) -> list[dict]:
        with requests.Session() as session:
            session.trust_env = False  # no proxy between the test and its own receiver
            listing = session.get(f"http://127.0.0.1:{self.port}/_received", timeout=5).json()
        # What it lists is what it wrote down, one JSON line each.
        lines = self.journal.read_text().splitlines() if self.journal.exists() else []
        assert listing == [json.loads(line) for line in lines]
        return listing



@pytest.fixture
def start_receiver(tmp_path):
    started: list[Receiver] = []

    def start(secrets: list[str], *options: str) -> Receiver:
        started.append(Receiver(tmp_path / str(len(started)), secrets, *options))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def test_the_municipal_system_gets_the_event_as_a_cloudevent_and_verifies_our_signature(
        start_receiver):
    secret = new_secret()
    receiver = start_receiver([secret])
    outcome = LOOPBACK.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json())
    assert (outcome.status, outcome.provider_id, outcome.detail) == ("sent", None, "HTTP 204")
    [got] = receiver.received()
    assert (got["verified"], got["answer"], got["webhook-id"]) == (True, 204, MESSAGE_ID)
    assert got["webhook-signature"].startswith("v1,")
    assert got["content_type"] == CONTENT_TYPE and got["user_agent"] == "Expediente-Webhooks/1"
    assert CloudEvent.from_json(got["body"]) == EN_ROUTE
    # Read as a city's own CloudEvents SDK would read the request: structured mode.
    read = from_http(HTTPMessage({"content-type": got["content_type"]}, got["body"].encode()),
                     JSONFormat())
    assert (read.get_id(), read.get_type(), read.get_subject(), read.get_data()) == (
        EN_ROUTE.id, EN_ROUTE.type, FOLIO, EN_ROUTE.data)


def test_while_the_secret_is_rotated_a_receiver_still_holding_the_old_one_verifies(
        start_receiver):
    old, new = new_secret(), new_secret()
    not_updated_yet = start_receiver([old])
    outcome = LOOPBACK.post(not_updated_yet.hook_url(), [new, old], MESSAGE_ID, EN_ROUTE.to_json())
    assert outcome.status == "sent"
    assert [got["verified"] for got in not_updated_yet.received()] == [True]


def test_a_receiver_that_does_not_hold_our_secret_answers_401_and_the_delivery_is_rejected(
        start_receiver):
    receiver = start_receiver([new_secret()])
    outcome = LOOPBACK.post(receiver.hook_url(), [new_secret()], MESSAGE_ID, EN_ROUTE.to_json())
    assert (outcome.status, outcome.detail) == ("rejected", "HTTP 401")
    assert [(got["verified"], got["answer"]) for got in receiver.received()] == [(False, 401)]


def test_a_message_signed_long_ago_is_refused_by_the_receiver_as_a_replay(start_receiver):
    secret = new_secret()
    receiver = start_receiver([secret])
    outcome = LOOPBACK.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json(),
                            timestamp=int(time.time()) - 600)
    assert (outcome.status, outcome.detail) == ("rejected", "HTTP 401")
    [got] = receiver.received()
    assert got["verified"] is False


def test_a_receiver_that_fails_once_gets_the_same_message_again_and_takes_it(start_receiver):
    secret = new_secret()
    receiver = start_receiver([secret], "--fail-first", "1")
    failed = LOOPBACK.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json())
    assert (failed.status, failed.detail) == ("retry", "HTTP 500")
    taken = LOOPBACK.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json())
    assert taken.status == "sent"
    first, second = receiver.received()
    assert first["webhook-id"] == second["webhook-id"] == MESSAGE_ID  # it can deduplicate
    assert [first["answer"], second["answer"]] == [500, 204]


def test_a_stopped_receiver_means_retry(start_receiver):
    secret = new_secret()
    receiver = start_receiver([secret])
    receiver.stop()
    outcome = LOOPBACK.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json())
    assert outcome.status == "retry" and "ConnectionError" in outcome.detail


def test_with_production_settings_a_loopback_endpoint_is_refused_without_a_request(
        start_receiver):
    secret = new_secret()
    receiver = start_receiver([secret])
    production = WebhookSender(5, allow_http=True, allow_private=False)
    outcome = production.post(receiver.hook_url(), [secret], MESSAGE_ID, EN_ROUTE.to_json())
    assert outcome.status == "rejected" and "loopback" in outcome.detail
    assert receiver.received() == []


def test_the_request_goes_to_the_address_the_name_resolved_to_and_names_the_host(start_receiver):
    # webhooks.lerdo.example is in no DNS: only the checked address can have been connected to.
    secret = new_secret()
    receiver = start_receiver([secret])
    sender = WebhookSender(5, allow_http=True, allow_private=True, resolve=resolving("127.0.0.1"))
    outcome = sender.post(receiver.hook_url("webhooks.lerdo.example"), [secret], MESSAGE_ID,
                          EN_ROUTE.to_json())
    assert outcome.status == "sent"
    [got] = receiver.received()
    assert got["host"] == f"webhooks.lerdo.example:{receiver.port}"
    assert (got["path"], got["verified"]) == ("/expediente/avisos", True)


def test_when_the_first_address_of_a_name_cannot_be_connected_to_the_next_one_is_tried(
        start_receiver):
    # The receiver listens on 127.0.0.1 only: 127.0.0.2 refuses, before anything is sent.
    secret = new_secret()
    receiver = start_receiver([secret])
    sender = WebhookSender(5, allow_http=True, allow_private=True,
                           resolve=resolving("127.0.0.2", "127.0.0.1"))
    outcome = sender.post(receiver.hook_url("webhooks.lerdo.example"), [secret], MESSAGE_ID,
                          EN_ROUTE.to_json())
    assert outcome.status == "sent"
    assert [got["webhook-id"] for got in receiver.received()] == [MESSAGE_ID]
    nowhere = WebhookSender(5, allow_http=True, allow_private=True,
                            resolve=resolving("127.0.0.2", "127.0.0.3"))
    outcome = nowhere.post(receiver.hook_url("webhooks.lerdo.example"), [secret], MESSAGE_ID,
                           EN_ROUTE.to_json())
    assert outcome.status == "retry"
    assert "127.0.0.2: ConnectionError" in outcome.detail
    assert "127.0.0.3: ConnectionError" in outcome.detail


def resolving(*addresses: str):
    def resolve(host, port):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in addresses]
    return resolve


class Endpoint:
    """An endpoint of the test's own, in this process: answers every POST with `status`,
    `headers` and `body`, and notes the Host of each request (and the TLS server name)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"",
                 tls: ssl.SSLContext | None = None) -> None:
        self.hosts: list[str] = []
        self.server_names: list[str | None] = []
        endpoint = self

        class Answer(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.hosts.append(self.headers["Host"])
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Answer)
        if tls is not None:
            tls.sni_callback = lambda connection, name, context: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    opened: list[Endpoint] = []

    def open_(*args, **kwargs) -> Endpoint:
        opened.append(Endpoint(*args, **kwargs))
        return opened[-1]

    yield open_
    for each in opened:
        each.close()


ANSWERS = [
    # (the endpoint's answer, the outcome, what its detail says)
    (200, {}, b"ok", "sent", "HTTP 200"),
    (202, {}, b"", "sent", "HTTP 202"),
    (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"", "rejected",
     "HTTP 302: redirects to http://169.254.169.254/latest/meta-data/"),
    (307, {"Location": "https://avisos.example.com/v2"}, b"", "rejected",
     "HTTP 307: redirects to https://avisos.example.com/v2"),
    (408, {}, b"", "retry", "HTTP 408"),
    (425, {}, b"", "retry", "HTTP 425"),
    (429, {"Retry-After": "120"}, b"slow down", "retry", "HTTP 429 (Retry-After: 120): slow down"),
    (500, {}, b"Internal\r\nServer Error", "retry", "HTTP 500: Internal Server Error"),
    (503, {}, b"", "retry", "HTTP 503"),
    (410, {}, b"", "rejected", "HTTP 410: endpoint gone"),
    (400, {}, b"bad payload", "rejected", "HTTP 400: bad payload"),
    (404, {}, b"", "rejected", "HTTP 404"),
    (413, {}, b"", "rejected", "HTTP 413"),
]


@pytest.mark.parametrize("status,headers,body,outcome,detail", ANSWERS,
                         ids=[str(answer[0]) for answer in ANSWERS])
def test_what_each_answer_of_an_endpoint_makes_of_the_delivery(endpoint, status, headers, body,
                                                                outcome, detail):
    answering = endpoint(status, headers, body)
    got = LOOPBACK.post(f"http://127.0.0.1:{answering.port}/in", [new_secret()], MESSAGE_ID,
                        EN_ROUTE.to_json())
    assert (got.status, got.provider_id) == (outcome, None)
    assert got.detail.startswith(detail)
    assert len(answering.hosts) == 1  # one request: no redirect followed, no retry of its own


def test_only_the_first_kib_of_an_answer_is_kept(endpoint):
    answering = endpoint(400, body=b"x" * 5000)
    got = LOOPBACK.post(f"http://127.0.0.1:{answering.port}/in", [new_secret()], MESSAGE_ID,
                        EN_ROUTE.to_json())
    assert (got.status, got.detail) == ("rejected", "HTTP 400: " + "x" * 1024)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A certificate authority of the test's own, and a certificate it signed for
    webhooks.lerdo.example."""
    folder = tmp_path_factory.mktemp("tls")
    authority, leaf, key = issue(folder, "webhooks.lerdo.example")
    return authority, leaf, key


def serving_tls(leaf: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    return context


def test_over_https_the_checked_address_is_connected_to_and_tls_speaks_to_the_name(
        endpoint, certificates):
    authority, leaf, key = certificates
    answering = endpoint(204, tls=serving_tls(leaf, key))
    sender = WebhookSender(5, allow_http=False, allow_private=True,
                           resolve=resolving("127.0.0.1"), ca_bundle=str(authority))
    got = sender.post(f"https://webhooks.lerdo.example:{answering.port}/in", [new_secret()],
                      MESSAGE_ID, EN_ROUTE.to_json())
    assert (got.status, got.detail) == ("sent", "HTTP 204")
    assert answering.server_names == ["webhooks.lerdo.example"]
    assert answering.hosts == [f"webhooks.lerdo.example:{answering.port}"]


def test_over_https_a_certificate_for_another_name_is_not_accepted(endpoint, certificates):
    authority, leaf, key = certificates
    answering = endpoint(204, tls=serving_tls(leaf, key))
    sender = WebhookSender(5, allow_http=False, allow_private=True,
                           resolve=resolving("127.0.0.1"), ca_bundle=str(authority))
    got = sender.post(f"https://impostor.lerdo.example:{answering.port}/in", [new_secret()],
                      MESSAGE_ID, EN_ROUTE.to_json())
    assert got.status == "retry" and "SSLError" in got.detail
    assert "impostor.lerdo.example" in got.detail
    assert answering.hosts == []


def issue(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA certificate, and a server certificate for `name` it signed (and the server's key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expediente test CA")])

    def certificate(subject: x509.Name, public_key, extensions) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                                  critical=False))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    usage = dict.fromkeys(["content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"], False)
    authority = certificate(ca_name, ca_key.public_key(), [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
         True)])
    server = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                         key.public_key(), [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
         True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName([x509.DNSName(name)]), False)])
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
