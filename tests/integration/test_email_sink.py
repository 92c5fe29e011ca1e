"""The email channel against a real SMTP server: the local sink of deploy/local/smtp_sink.py, run as
its own process (aiosmtpd stays out of this eventlet-patched test process). What it stores is what
a citizen's mail server would get; a sink that answers 451 makes a "retry", then takes the same
message; a stopped one makes a "retry" too; a refused recipient is "rejected"."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from services.notifications.channels import Delivery
from services.notifications.mail import SmtpChannel
from services.notifications.messages import render
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import TYPE_PREFIX
from tests.support import LocalServer

pytestmark = pytest.mark.integration

SINK = Path(__file__).resolve().parents[2] / "deploy" / "local" / "smtp_sink.py"
FOLIO = "QRO-2026-000123"
OPT_OUT = f"https://avisos.example.gob.mx/baja?folio={FOLIO}&t=" + "c0ffee" * 12


class Sink(LocalServer):
    """One smtp_sink.py process on a free port, storing in a folder of the test's own."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder / "mail"
        super().__init__(folder, "smtp_sink.py", "--maildir", str(self.folder), *options)
        self.start()

    def channel(self) -> SmtpChannel:
        return SmtpChannel.from_config({
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_TIMEOUT": 5,
            "SMTP_FROM": "Avisos del Ayuntamiento <avisos@lerdo.gob.mx>"})

    def stored(self) -> list[email.message.EmailMessage]:
        files = sorted(self.folder.glob("*.eml"), key=lambda path: int(path.name.split("-")[0]))
        # Stored as it came over SMTP, CRLF; read as a mail store would hand it over, LF.
        return [email.message_from_bytes(path.read_bytes().replace(b"\r\n", b"\n"),
                                         policy=policy.default) for path in files]



@pytest.fixture
def start_sink(tmp_path):
    started: list[Sink] = []

    def start(*options: str) -> Sink:
        started.append(Sink(tmp_path / str(len(started)), *options))
        return started[-1]

    yield start
    for sink in started:
        sink.stop()


def en_route(event_id: str = "ev-41") -> Delivery:
    """Ana is told, in Spanish, that the crew is on its way to her pothole."""
    event = CloudEvent(id=event_id, source="/tracking", type=f"{TYPE_PREFIX}crew_en_route",
                       subject=FOLIO, time=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
                       data={"folio": FOLIO, "service_name": "Bache en la vía pública",
                             "eta": "2026-12-01T16:25:00+00:00"})
    message = render(event, status_url=f"https://seguimiento.example.gob.mx/{FOLIO}",
                     unsubscribe_url=OPT_OUT)
    assert message is not None
    return Delivery(key=f"{event_id}:sub-7:email", address="ana.lopez@example.com",
                    message=message, unsubscribe_url=OPT_OUT)


def test_the_citizen_gets_the_step_as_one_email_with_both_parts(start_sink):
    sink = start_sink()
    delivery = en_route()
    outcome = sink.channel().send(delivery)
    assert outcome.status == "sent"
    [mail] = sink.stored()
    assert mail["Subject"] == delivery.message.subject and FOLIO in mail["Subject"]
    assert mail["Message-ID"] == outcome.provider_id
    assert mail["List-Unsubscribe"] == f"<{OPT_OUT}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_body(("plain",)).get_content() == delivery.message.text
    # (A MIME part ends with a line break: the template's last line gets one.)
    assert mail.get_body(("html",)).get_content().rstrip("\n") == delivery.message.html
    assert "10:25" in mail.get_body(("plain",)).get_content()  # the ETA, in the city's time


def test_a_resend_after_a_crash_carries_the_same_message_id_and_another_step_another(start_sink):
    sink = start_sink()
    channel = sink.channel()
    assert [channel.send(en_route()).status, channel.send(en_route()).status,
            channel.send(en_route("ev-42")).status] == ["sent"] * 3
    first, resent, other = sink.stored()
    assert first["Message-ID"] == resent["Message-ID"] != other["Message-ID"]


def test_a_server_that_says_try_later_gets_the_same_message_again_and_takes_it(start_sink):
    sink = start_sink("--fail-first", "1")
    channel = sink.channel()
    refused = channel.send(en_route())
    assert (refused.status, sink.stored()) == ("retry", [])
    assert refused.detail.startswith("451")
    taken = channel.send(en_route())
    assert taken.status == "sent"
    assert [mail["Message-ID"] for mail in sink.stored()] == [taken.provider_id]


def test_a_stopped_server_means_retry(start_sink):
    sink = start_sink()
    channel = sink.channel()
    sink.stop()
    outcome = channel.send(en_route())
    assert outcome.status == "retry" and "Refused" in outcome.detail


def test_a_mailbox_the_server_does_not_have_is_rejected(start_sink):
    sink = start_sink("--refuse", "example.com")
    outcome = sink.channel().send(en_route())
    assert (outcome.status, outcome.detail[:3], sink.stored()) == ("rejected", "550", [])
