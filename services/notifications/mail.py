"""The email channel: a citizen's message as one multipart email (plain text and HTML, UTF-8) handed
to an SMTP server with plain smtplib, which runs green under eventlet's patched sockets.

SMTP has no idempotency key: when we crash between the server's answer and our record of it, the
delivery is sent again. Our answer is a Message-ID derived from the delivery's key, the same on
every attempt, so the second copy is recognisably the first one to the recipient's system (mail
stores and list tools drop or thread a repeated Message-ID) and to anyone reading the logs."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import smtplib
import ssl
import threading
import time
import unicodedata
from collections.abc import Mapping
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from services.notifications.channels import Delivery, Outcome, rejected, retry, sent

REUSE_SECONDS = 10.0
MAX_IDLE_CONNECTIONS = 20


class BadAddress(ValueError):
    """An address no server will ever take from us: the delivery is rejected, not retried."""


class SmtpChannel:
    """Email through one SMTP server (the municipality's relay, or the local sink in development).

    A connection is kept for the next message while it is fresh (REUSE_SECONDS), and checked
    with RSET before it carries one: a city's burst of steps is many messages a second, and a
    new connection for each (TCP, EHLO, STARTTLS, login) costs more than the message."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, starttls: bool = False,
                 username: str | None = None, password: str | None = None,
                 timeout: float = 10) -> None:
        if username and not starttls and not _loopback(host):
            raise ValueError("SMTP_USERNAME without SMTP_STARTTLS would send the password in "
                             f"the clear to {host}")
        self.host, self.port, self.timeout = host, int(port), float(timeout)
        self.starttls, self.username, self.password = starttls, username or None, password
        self.sender = _sender(sender)
        self.domain = self.sender.domain.lower()
        # Connections kept between messages (a burst of steps is many messages a second); one
        # idle longer than REUSE_SECONDS is closed rather than trusted.
        self.reuse_seconds = REUSE_SECONDS
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context() if starttls else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpChannel:
        """The channel the service's configuration names (environment variables through
        config.yaml): SMTP_HOST, SMTP_PORT, SMTP_FROM (required), SMTP_STARTTLS,
        SMTP_USERNAME, SMTP_PASSWORD, SMTP_TIMEOUT (seconds)."""
        sender = str(config.get("SMTP_FROM") or "").strip()
        if not sender:
            raise ValueError("SMTP_FROM is required: the address citizens' emails come from")
        return cls(str(config.get("SMTP_HOST") or "127.0.0.1"), int(config.get("SMTP_PORT") or 25),
                   sender, starttls=_flag(config.get("SMTP_STARTTLS")),
                   username=str(config.get("SMTP_USERNAME") or "") or None,
                   password=str(config.get("SMTP_PASSWORD") or "") or None,
                   timeout=float(config.get("SMTP_TIMEOUT") or 10))

    def message_id(self, key: str) -> str:
        """The Message-ID of every attempt of the delivery with this key."""
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@expediente.{self.domain}>"

    def build(self, delivery: Delivery) -> EmailMessage:
        """The email of `delivery`. Raises BadAddress for a recipient that is not an address, and
        ValueError for an opt-out link that is not an http(s) one (a setting, not data)."""
        to = Address(addr_spec=address(delivery.address))
        email = EmailMessage(policy=_POLICY)  # UTF-8, and a header with CR or LF raises
        email["From"] = self.sender
        email["To"] = to
        email["Subject"] = _one_line(delivery.message.subject)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = self.message_id(delivery.key)
        # Asks auto-responders (out-of-office, vacation) not to answer a notification.
        email["Auto-Submitted"] = "auto-generated"
        if delivery.unsubscribe_url:
            # RFC 8058: a mail client's "unsubscribe" button POSTs to the link, no page to read.
            email["List-Unsubscribe"] = f"<{_link(delivery.unsubscribe_url)}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        # Quoted-printable keeps both parts 7-bit: no server needs 8BITMIME to carry "señal".
        email.set_content(delivery.message.text, cte="quoted-printable")
        email.add_alternative(delivery.message.html, subtype="html", cte="quoted-printable")
        if _LANGUAGE.fullmatch(delivery.language or ""):  # after set_content, which drops it
            email["Content-Language"] = delivery.language
        if delivery.attachment is not None:  # billing's statement or receipt
            maintype, _, subtype = delivery.attachment.content_type.partition("/")
            email.add_attachment(delivery.attachment.data, maintype=maintype, subtype=subtype,
                                 filename=_one_line(delivery.attachment.filename))
        return email

    def send(self, delivery: Delivery) -> Outcome:
        """Hand the email to the server once. A 5xx for this recipient or this message is
        "rejected"; everything else that fails — no connection, a timeout, a 4xx, our login or
        sender refused (settings an operator fixes) — is "retry"."""
        try:
            email = self.build(delivery)
        except BadAddress as error:
            return rejected(str(error))
        try:
            self._transmit(email)
        except smtplib.SMTPRecipientsRefused as error:
            code, answer = next(iter(error.recipients.values()))
            return _by_code(code, answer)
        except smtplib.SMTPDataError as error:
            return _by_code(error.smtp_code, error.smtp_error)
        except (smtplib.SMTPException, OSError) as error:  # OSError: refused, timeout, TLS
            return retry(f"{type(error).__name__}: {error}")
        return sent(email["Message-ID"], f"accepted by {self.host}:{self.port}")

    def _transmit(self, email: EmailMessage) -> None:
        smtp = self._connection()
        try:
            smtp.send_message(email)
        except BaseException:
            smtp.close()
            raise
        # The message is the server's now; the connection waits for the next one.
        self._keep(smtp)

    def _connection(self) -> smtplib.SMTP:
        """A connection that answered RSET just now (one kept from an earlier message, if it
        is still fresh and alive), else a new one, logged in. Nothing of the message has been
        sent on a kept connection that fails its RSET: trying a new one sends it once."""
        while True:
            with self._lock:
                kept = self._idle.pop() if self._idle else None
            if kept is None:
                break
            smtp, since = kept
            if time.monotonic() - since < self.reuse_seconds:
                try:
                    smtp.rset()
                    return smtp
                except (smtplib.SMTPException, OSError):
                    pass
            _quit(smtp)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=self._tls)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((smtp, time.monotonic()))
                return
        _quit(smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    """QUIT, and close whatever happens: a connection we are done with."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def address(text: str) -> str:
    """`text` as a bare addr-spec we can send to without SMTPUTF8: an ASCII local part and a
    domain (an internationalised one in its xn-- form). Anything else raises BadAddress, and
    nothing that passes can add a header or a recipient."""
    local, at, domain = str(text).strip().rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        domain = ""
    if not (at and _LOCAL.fullmatch(local) and _DOMAIN.fullmatch(domain) and len(domain) <= 253):
        raise BadAddress(f"not an email address we can send to: {text!r}")
    return f"{local}@{domain}"


class _OneLine(UnstructuredHeader, BaseHeader):
    """A header written on one line as it is: the default folding turns a URL longer than a line
    into RFC 2047 encoded words, which no mail client reads as List-Unsubscribe's link."""

    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _OneLine)
_POLICY = policy.default.clone(header_factory=_HEADERS)

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"(?=.{{1,64}}$){_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _sender(text: str) -> Address:
    """SMTP_FROM, "avisos@lerdo.gob.mx" or "Ayuntamiento de Lerdo <avisos@lerdo.gob.mx>"."""
    name, _, rest = str(text).strip().rpartition("<")
    spec = rest.removesuffix(">") if name or rest.endswith(">") else rest
    try:
        return Address(display_name=_one_line(name.strip().strip('"')), addr_spec=address(spec))
    except BadAddress:
        raise ValueError(f"SMTP_FROM is not an address: {text!r}") from None


def _one_line(text: str) -> str:
    """A header's text on one line: CR, LF and every other control or separator character
    become spaces, so a subject can say anything but never start a header of its own."""
    clean = "".join(" " if unicodedata.category(char) in _CONTROL else char for char in text)
    return " ".join(clean.split())


def _link(url: str) -> str:
    """An opt-out link fit for a header line: http(s), ASCII, no space, no angle bracket."""
    parts = urlsplit(url)
    plain = url.isascii() and not any(char.isspace() or char in '<>"' or not char.isprintable()
                                      for char in url)
    if len(url) > 900 or parts.scheme not in ("http", "https") or not parts.netloc or not plain:
        raise ValueError(f"unsubscribe_url must be an http(s) address, not {url!r}")
    return url


def _by_code(code: int, answer: bytes | str) -> Outcome:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
    detail = f"{code} {text}"
    return rejected(detail) if 500 <= code < 600 else retry(detail)


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on") if value else False


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
