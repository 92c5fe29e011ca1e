"""The email a citizen receives, as the channel builds it (no server): both parts in UTF-8, a
Message-ID that is the same on every attempt of one delivery, the one-click opt-out, and nothing in
a subject or an address that can add a header or a recipient. Then what each answer of an SMTP
server becomes: "retry" when it may take the message later, "rejected" when it never will."""

from __future__ import annotations

import email
import smtplib
from email import policy

import pytest

from services.notifications.channels import Delivery
from services.notifications.mail import BadAddress, SmtpChannel, address
from services.notifications.messages import Message

OPT_OUT = "https://avisos.example.gob.mx/baja?folio=QRO-2026-000123&t=" + "f3" * 40
MESSAGE = Message(
    subject="Cuadrilla en camino · QRO-2026-000123",
    text="Hola:\n\nLa cuadrilla ya salió hacia el bache de la calle Ñandú; llega a las 10:25.\n",
    html="<p>Hola:</p><p>La cuadrilla ya salió hacia el bache de la calle Ñandú.</p>",
    sms="La cuadrilla ya salio",
)
CHANNEL = SmtpChannel("127.0.0.1", 1025, "Ayuntamiento de Lerdo · Avisos <avisos@lerdo.gob.mx>")


def delivery(key: str = "ev-1:sub-9:email", to: str = "ana.lopez@example.com",
             message: Message = MESSAGE, **more) -> Delivery:
    return Delivery(key=key, address=to, message=message, **more)


def received(delivery: Delivery) -> email.message.EmailMessage:
    """The email as the recipient's server reads it off the wire."""
    built = CHANNEL.build(delivery)
    return email.message_from_bytes(built.as_bytes(policy=built.policy.clone(linesep="\r\n")),
                                    policy=policy.default)


def test_the_email_carries_the_text_and_the_html_with_spanish_intact():
    mail = received(delivery())
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Cuadrilla en camino · QRO-2026-000123"
    assert mail["To"] == "ana.lopez@example.com"
    assert mail["From"].addresses[0].addr_spec == "avisos@lerdo.gob.mx"
    assert mail["From"].addresses[0].display_name == "Ayuntamiento de Lerdo · Avisos"
    assert mail["Content-Language"] == "es"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "ya salió hacia el bache de la calle Ñandú" in text.get_content()
    assert "<p>La cuadrilla ya salió hacia el bache de la calle Ñandú.</p>" in html.get_content()


def test_every_attempt_of_one_delivery_has_the_same_message_id_and_another_delivery_another():
    first, again = received(delivery()), received(delivery())
    other = received(delivery(key="ev-2:sub-9:email"))
    assert first["Message-ID"] == again["Message-ID"] == CHANNEL.message_id("ev-1:sub-9:email")
    assert first["Message-ID"].endswith("@expediente.lerdo.gob.mx>")
    assert other["Message-ID"] != first["Message-ID"]


def test_the_opt_out_link_is_a_one_click_unsubscribe_on_one_unencoded_line():
    mail = received(delivery(unsubscribe_url=OPT_OUT))
    assert mail["List-Unsubscribe"] == f"<{OPT_OUT}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"List-Unsubscribe: <{OPT_OUT}>\r\n".encode() in CHANNEL.build(
        delivery(unsubscribe_url=OPT_OUT)).as_bytes(policy=policy.SMTP)


def test_without_an_opt_out_link_no_unsubscribe_header_is_sent():
    mail = received(delivery())
    assert "List-Unsubscribe" not in mail and "List-Unsubscribe-Post" not in mail


@pytest.mark.parametrize("link", ["javascript:alert(1)", "https://x.example/a\r\nBcc: a@b.example",
                                  "https://x.example/a> <mailto:a@b.example", "ftp://x.example/"])
def test_an_opt_out_link_that_is_not_a_plain_web_address_is_a_setting_error(link):
    with pytest.raises(ValueError, match="unsubscribe_url"):
        CHANNEL.build(delivery(unsubscribe_url=link))


@pytest.mark.parametrize("subject", ["Aviso\r\nBcc: espia@example.com",
                                     "Aviso\nContent-Type: text/html\n\n<script>",
                                     "Aviso\u2028Bcc: espia@example.com\x00"])
def test_a_hostile_subject_stays_one_subject_and_adds_no_header(subject):
    hostile = Message(subject=subject, text=MESSAGE.text, html=MESSAGE.html, sms="")
    mail = received(delivery(message=hostile))
    assert mail["Bcc"] is None
    assert len(mail.get_all("Content-Type")) == 1
    assert mail.get_content_type() == "multipart/alternative"
    assert "\n" not in mail["Subject"] and mail["Subject"].startswith("Aviso ")
    assert mail.get_all("To") == ["ana.lopez@example.com"]


def test_a_language_that_is_not_a_language_tag_is_left_out_of_the_headers():
    assert received(delivery(language="en-US"))["Content-Language"] == "en-US"
    mail = received(delivery(language="es\r\nBcc: espia@example.com"))
    assert (mail["Content-Language"], mail["Bcc"]) == (None, None)


@pytest.mark.parametrize("bad", ["", "ana", "ana@", "@example.com", "ana@example",
                                 "ana@example.com\r\nBcc: espia@example.com",
                                 "ana@example.com, espia@example.com", "Ana <ana@example.com>",
                                 "ana lopez@example.com", "ana..lopez@example.com",
                                 "josé@example.com", "ana@-example.com"])
def test_what_is_not_an_address_is_rejected_without_calling_the_server(bad, monkeypatch):
    monkeypatch.setattr(smtplib, "SMTP", lambda *a, **k: pytest.fail("the server was called"))
    with pytest.raises(BadAddress):
        address(bad)
    outcome = CHANNEL.send(delivery(to=bad))
    assert outcome.status == "rejected" and outcome.final


def test_an_address_is_normalised_and_an_international_domain_goes_in_its_ascii_form():
    assert address(" Ana.Lopez+avisos@Example.COM ") == "Ana.Lopez+avisos@example.com"
    assert address("ana@correo.méxico.mx") == "ana@correo.xn--mxico-bsa.mx"


def test_a_sender_that_is_not_an_address_or_a_password_in_the_clear_is_refused_at_start():
    with pytest.raises(ValueError, match="SMTP_FROM"):
        SmtpChannel.from_config({"SMTP_HOST": "smtp.example.com"})
    with pytest.raises(ValueError, match="SMTP_FROM"):
        SmtpChannel("smtp.example.com", 25, "avisos@lerdo.gob.mx\r\nBcc: x@example.com")
    with pytest.raises(ValueError, match="in the clear"):
        SmtpChannel.from_config({"SMTP_HOST": "smtp.example.com", "SMTP_FROM": "a@lerdo.gob.mx",
                                 "SMTP_USERNAME": "avisos", "SMTP_PASSWORD": "secreto"})


def test_the_channel_is_built_from_the_service_configuration():
    channel = SmtpChannel.from_config({
        "SMTP_HOST": "smtp.lerdo.gob.mx", "SMTP_PORT": "587", "SMTP_FROM": "avisos@lerdo.gob.mx",
        "SMTP_STARTTLS": "true", "SMTP_USERNAME": "avisos", "SMTP_PASSWORD": "secreto",
        "SMTP_TIMEOUT": "4.5"})
    assert (channel.host, channel.port, channel.starttls, channel.timeout) == (
        "smtp.lerdo.gob.mx", 587, True, 4.5)
    assert (channel.username, channel.password, channel.name) == ("avisos", "secreto", "email")
    local = SmtpChannel.from_config({"SMTP_FROM": "avisos@lerdo.gob.mx", "SMTP_USERNAME": ""})
    assert (local.host, local.starttls, local.username) == ("127.0.0.1", False, None)


# ---- what each answer of the server becomes ----------------------------------------------------

class FakeSMTP:
    """smtplib.SMTP that fails the way it is told to, at the step it is told to."""

    fail_at: str = ""
    error: BaseException | None = None
    sent: list[email.message.EmailMessage] = []
    quit_called = False
    connections = 0
    resets = 0

    def __init__(self, host, port, timeout):
        if self.fail_at == "connect":
            raise self.error
        FakeSMTP.connections += 1

    def rset(self):
        FakeSMTP.resets += 1
        self._step("rset")

    def starttls(self, context=None):
        self._step("starttls")

    def login(self, user, password):
        self._step("login")

    def send_message(self, message):
        self._step("send")
        FakeSMTP.sent.append(message)

    def quit(self):
        FakeSMTP.quit_called = True
        self._step("quit")

    def close(self):
        pass

    def _step(self, name):
        if name == self.fail_at:
            raise self.error


@pytest.fixture
def server(monkeypatch):
    FakeSMTP.fail_at, FakeSMTP.error, FakeSMTP.sent, FakeSMTP.quit_called = "", None, [], False
    FakeSMTP.connections = FakeSMTP.resets = 0
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(CHANNEL, "_idle", [])  # no connection kept from another test
    return FakeSMTP


def fails(server, step, error):
    server.fail_at, server.error = step, error


@pytest.mark.parametrize(("step", "error"), [
    ("connect", ConnectionRefusedError(111, "Connection refused")),
    ("connect", TimeoutError("timed out")),
    ("connect", smtplib.SMTPConnectError(554, b"no service")),
    ("send", smtplib.SMTPServerDisconnected("Connection unexpectedly closed")),
    ("send", TimeoutError("timed out")),
    ("send", smtplib.SMTPRecipientsRefused({"ana.lopez@example.com": (450, b"mailbox busy")})),
    ("send", smtplib.SMTPDataError(451, b"4.3.0 try again later")),
    ("send", smtplib.SMTPSenderRefused(553, b"sender not allowed", "avisos@lerdo.gob.mx")),
    ("login", smtplib.SMTPAuthenticationError(535, b"bad credentials")),
    ("starttls", smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")),
])
def test_what_the_server_may_take_later_is_retried(server, step, error):
    fails(server, step, error)
    channel = SmtpChannel("127.0.0.1", 25, "avisos@lerdo.gob.mx", starttls=True,
                          username="avisos", password="secreto")
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.provider_id, outcome.final) == ("retry", None, False)
    assert outcome.detail


@pytest.mark.parametrize("error", [
    smtplib.SMTPRecipientsRefused({"ana.lopez@example.com": (550, b"5.1.1 no such user")}),
    smtplib.SMTPDataError(554, b"5.7.1 message refused"),
])
def test_what_the_server_will_never_take_is_rejected(server, error):
    fails(server, "send", error)
    outcome = CHANNEL.send(delivery())
    assert (outcome.status, outcome.final) == ("rejected", True)
    assert outcome.detail.startswith("55")


def test_a_message_the_server_took_is_sent_under_its_message_id(server):
    outcome = CHANNEL.send(delivery())
    assert (outcome.status, outcome.final) == ("sent", True)
    assert outcome.provider_id == CHANNEL.message_id("ev-1:sub-9:email")
    assert [m["Message-ID"] for m in server.sent] == [outcome.provider_id]


def test_the_next_message_goes_on_the_same_connection_once_it_answers_rset(server):
    assert CHANNEL.send(delivery("ev-1:sub-9:email")).status == "sent"
    assert CHANNEL.send(delivery("ev-2:sub-9:email")).status == "sent"
    assert (server.connections, server.resets, len(server.sent)) == (1, 1, 2)


def test_a_kept_connection_that_fails_its_rset_is_replaced_and_the_message_sent_once(server):
    assert CHANNEL.send(delivery("ev-1:sub-9:email")).status == "sent"
    fails(server, "rset", smtplib.SMTPServerDisconnected("the server closed it meanwhile"))
    assert CHANNEL.send(delivery("ev-2:sub-9:email")).status == "sent"
    assert (server.connections, len(server.sent)) == (2, 2)
    assert server.quit_called  # the dead one was let go


def test_a_connection_idle_too_long_is_closed_not_trusted(server, monkeypatch):
    assert CHANNEL.send(delivery("ev-1:sub-9:email")).status == "sent"
    monkeypatch.setattr(CHANNEL, "reuse_seconds", 0.0)
    assert CHANNEL.send(delivery("ev-2:sub-9:email")).status == "sent"
    assert (server.connections, server.resets) == (2, 0)


def test_a_document_goes_as_an_attachment_beside_the_text_and_html():
    from services.notifications.channels import Attachment

    pdf = b"%PDF-1.4\n%%EOF\n"
    channel = SmtpChannel("127.0.0.1", 25, "Avisos <avisos@example.gob.mx>")
    message = Message("Recibo", "Adjuntamos tu recibo.", "<p>Adjuntamos tu recibo.</p>",
                      "Recibo")
    email = channel.build(Delivery("receipt-1", "pago@example.com", message, purpose="document",
                                   attachment=Attachment("recibo.pdf", "application/pdf", pdf)))
    (attached,) = list(email.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type()) == ("recibo.pdf",
                                                                      "application/pdf")
    assert attached.get_content() == pdf
    assert email.get_body(("plain",)).get_content().strip() == "Adjuntamos tu recibo."
