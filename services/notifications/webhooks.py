"""Webhooks: a municipal system registers an HTTPS endpoint and gets each report event it follows
POSTed as a CloudEvent (HTTP binding, structured mode), signed per the Standard Webhooks
specification (https://www.standardwebhooks.com). The building blocks: secrets and signatures,
which URLs we post to, one POST and what its answer means, and the wait before the next attempt.

Posting to a URL somebody gave us must never reach the municipality's own network, so every
address the endpoint's host resolves to has to be public — at registration and again at every
send, and the connection goes to the very address that was checked (DNS rebinding)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from secrets import token_bytes
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from services.notifications.channels import Outcome, rejected, retry, sent
from shared.contracts.cloudevents import CONTENT_TYPE

SECRET_PREFIX = "whsec_"
USER_AGENT = "Expediente-Webhooks/1"
MAX_URL_LENGTH = 2000
EXCERPT = 1024  # bytes of an endpoint's answer kept in the outcome's detail
ADDRESSES_TRIED = 3  # of those a host resolves to, when the first ones cannot be connected to

Resolve = Callable[[str, int], Iterable[tuple[Any, ...]]]  # socket.getaddrinfo, or a fake
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Visible ASCII but ".": the signed text is "id.timestamp.body", and an id with a dot in it
# could be cut elsewhere so that one signature fits another message.
_MESSAGE_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; not is_private in 3.11
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: "whsec_" + 32 random bytes in
    base64. The municipality is shown it once, when it registers its endpoint."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode()


def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: "v1,<base64 HMAC-SHA256 of 'id.timestamp.body'>" for each
    secret, space-separated. While a secret is rotated, the new one and the old one both sign,
    so the receiver verifies with whichever it holds."""
    if isinstance(secrets, str) or not secrets:
        raise ValueError("sign with a list of one or more secrets")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"a webhook id is 1-256 visible ASCII characters but '.': {message_id!r}")
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.digest(_key(secret), signed, hashlib.sha256))
                    .decode() for secret in secrets)


def headers(secrets: Sequence[str], message_id: str, timestamp: int,
            body: bytes) -> dict[str, str]:
    """The headers of one POST: the Standard Webhooks three, and the CloudEvents structured
    mode's content type (the body is the whole event, CloudEvent.to_json())."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, message_id, timestamp, body),
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
    }


def _key(secret: str) -> bytes:
    key = b""
    if secret.startswith(SECRET_PREFIX):
        with contextlib.suppress(ValueError):  # binascii.Error is one
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    if not 24 <= len(key) <= 64:  # the specification's bounds
        raise ValueError("a webhook secret is 'whsec_' followed by 24-64 bytes in base64")
    return key


class RefusedUrl(ValueError):
    """A URL we will not post to. The message says why, for whoever registers the endpoint."""


class UnresolvedHost(RefusedUrl):
    """The host has no address now: refused at registration, a "retry" at send time."""


class _Target(NamedTuple):
    url: str  # normalised: lower-case scheme and host, no default port, a path
    scheme: str
    host: str  # the name (or literal IP) TLS and the Host header speak of
    port: int
    addresses: list[Address]  # what the host resolved to: all public unless allowed otherwise

    def url_to(self, address: Address) -> str:
        """The URL with one of the checked addresses in place of the name."""
        where = f"[{address}]" if address.version == 6 else str(address)
        parts = urlsplit(self.url)
        return urlunsplit((self.scheme, f"{where}:{self.port}", parts.path, parts.query, ""))


def check_url(url: str, *, allow_http: bool, allow_private: bool,
              resolve: Resolve = socket.getaddrinfo) -> str:
    """The endpoint URL normalised, or RefusedUrl saying what is wrong with it: an https URL
    (http too if allow_http) with a host, maybe a port, no user:password@, no #fragment, at most
    2000 characters, whose host resolves only to public addresses (any, if allow_private)."""
    return _check(url, allow_http, allow_private, resolve).url


def _check(url: str, allow_http: bool, allow_private: bool, resolve: Resolve) -> _Target:
    """check_url's work, with the addresses it checked, for the sender to connect to."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        raise RefusedUrl("the URL has spaces, control characters or backslashes in it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedUrl(f"the URL cannot be read: {error}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise RefusedUrl(f"the URL must start with {' or '.join(s + '://' for s in schemes)}")
    if "@" in parts.netloc:
        raise RefusedUrl("the URL must not carry a user name or password (user:password@); "
                         "the signature is what proves a request comes from us")
    if "#" in url:
        raise RefusedUrl("the URL must not have a #fragment: it never reaches the server")
    if not parts.hostname:
        raise RefusedUrl("the URL has no host name")
    if port == 0:
        raise RefusedUrl("port 0 is not a port one can connect to")
    host, literal = _host(parts.hostname)
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = [literal] if literal else _resolve(host, port, resolve)
    reasons = [] if allow_private else [(a, r) for a in addresses if (r := _not_public(a))]
    if reasons:
        address, reason = reasons[0]
        where = f"{host} resolves to {address}" if literal is None else str(address)
        raise RefusedUrl(f"{where}, {reason}: webhooks go only to public internet addresses")
    netloc = f"[{host}]" if literal and literal.version == 6 else host
    if parts.port not in (None, 443 if parts.scheme == "https" else 80):
        netloc += f":{port}"
    normalised = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return _Target(normalised, parts.scheme, host, port, addresses)


def _host(name: str) -> tuple[str, Address | None]:
    """A literal IP as itself; a name in ASCII (an internationalised one in its xn-- form)."""
    try:
        literal = ipaddress.ip_address(name)
        return str(literal), literal
    except ValueError:
        pass
    try:
        name = name.encode("idna").decode("ascii").rstrip(".")
    except UnicodeError:
        raise RefusedUrl(f"{name!r} is not a host name") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise RefusedUrl(f"{name!r} is not a host name")
    if labels[-1].isdigit():  # 127.1, 2130706433: an IP address in a form resolvers differ on
        raise RefusedUrl(f"{name!r} is neither a host name nor an IP address in standard form")
    return name, None


def _resolve(host: str, port: int, resolve: Resolve) -> list[Address]:
    try:
        found = resolve(host, port)
        # An IPv6 link-local answer may carry its zone ("fe80::1%eth0").
        addresses = [ipaddress.ip_address(str(entry[4][0]).partition("%")[0]) for entry in found
                     if entry[0] in (socket.AF_INET, socket.AF_INET6)]
    except (OSError, UnicodeError, ValueError) as error:  # socket.gaierror is an OSError
        raise UnresolvedHost(f"{host} does not resolve to an address ({error})") from None
    if not addresses:
        raise UnresolvedHost(f"{host} does not resolve to an address")
    return list(dict.fromkeys(addresses))


def _not_public(address: Address) -> str | None:
    """Why nothing may be posted to `address`; None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address and reach it: mapped, NAT64, 6to4.
        embedded = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if embedded is not None:
            return _not_public(embedded)
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address (this very machine)"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address in _SHARED:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address, not on the public internet"
    if address.is_private:
        return "a private network address"
    if not address.is_global:
        return "an address for special use, not on the public internet"
    return None


class WebhookSender:
    """Posts one signed CloudEvent to one endpoint and tells what became of it (channels.py):
    "sent" on a 2xx; "retry" when the endpoint may take it later (408, 425, 429, 5xx, no
    connection, no answer in time, a host that does not resolve now); "rejected" when it never
    will (any other 4xx, 410 Gone, a redirect, a URL that is refused now)."""

    def __init__(self, timeout: float, allow_http: bool, allow_private: bool, *,
                 resolve: Resolve = socket.getaddrinfo, ca_bundle: str | None = None) -> None:
        self.timeout, self.allow_http, self.allow_private = timeout, allow_http, allow_private
        self.resolve = resolve
        self.ca_bundle = ca_bundle  # trusted instead of the system's authorities (tests)
        self._context: ssl.SSLContext | None = None

    def post(self, url: str, secrets: Sequence[str], message_id: str, body: bytes,
             timestamp: int | None = None) -> Outcome:
        """POST `body` (CloudEvent.to_json()) to `url`, signed with `secrets`. The same
        `message_id` on every attempt of one delivery: receivers deduplicate by it."""
        try:
            # Checked again: what the name resolves to may have changed since registration.
            checked = _check(url, self.allow_http, self.allow_private, self.resolve)
        except UnresolvedHost as error:
            return retry(str(error))
        except RefusedUrl as error:
            return rejected(str(error))
        sent_at = int(time.time()) if timestamp is None else timestamp
        signed = {**headers(secrets, message_id, sent_at, body),
                  "Host": urlsplit(checked.url).netloc, "Accept-Encoding": "identity"}
        # The addresses in the resolver's order, the next one only when no connection could be
        # made to this one (no byte sent, so nothing is delivered twice): eventlet's resolver
        # lists IPv6 first, which a server without an IPv6 route cannot reach.
        failures = []
        for address in checked.addresses[:ADDRESSES_TRIED]:
            outcome, connected = self._attempt(checked, address, body, signed)
            if connected:
                return outcome
            failures.append(outcome.detail)
        return retry("; ".join(failures))

    def _tls(self) -> ssl.SSLContext:
        """One TLS context for every POST (loading the system's authorities costs ~20 ms)."""
        if self._context is None:
            context = ssl.create_default_context(cafile=self.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.hostname_checks_common_name = False  # the names in subjectAltName only
            self._context = context
        return self._context

    def _attempt(self, checked: _Target, address: Address, body: bytes,
                 signed: dict[str, str]) -> tuple[Outcome, bool]:
        """One POST to one checked address: its outcome, and whether a connection was made."""
        try:
            with requests.Session() as session:
                # No proxy, .netrc or CA bundle from the environment: a proxy would resolve the
                # name again, out of our sight.
                session.trust_env = False
                if checked.url.startswith("https:"):
                    session.mount("https://", _PinnedTls(checked.host, self._tls()))
                # The checked address is connected to, and the name is sent as Host (and as TLS
                # server name). Redirects are never followed: one could lead anywhere.
                with session.post(checked.url_to(address), data=body, headers=signed,
                                  timeout=self.timeout, allow_redirects=False, stream=True,
                                  verify=self.ca_bundle or True) as answer:
                    return _outcome(answer), True
        except requests.RequestException as error:  # refused, reset, timeout, TLS, certificate
            reason = getattr(error.args[0], "reason", None) if error.args else None
            connected = not (isinstance(error, requests.ConnectTimeout)
                             or isinstance(reason, urllib3.exceptions.NewConnectionError))
            if isinstance(error, requests.Timeout):
                return retry(f"{address}: no answer within {self.timeout} s: {error}"), connected
            return retry(f"{address}: {type(error).__name__}: {error}"), connected


class _PinnedTls(HTTPAdapter):
    """Connects to the URL's (checked) address but speaks TLS to the host name: the server name
    sent and the certificate verified are the name's, so pinning weakens nothing.

    The TLS context is the standard library's default, made here rather than by urllib3: under
    eventlet, urllib3's own fails (RecursionError) when requests was imported before
    monkey_patch() — as in the test process, whose pytest plugins import it first."""

    def __init__(self, host: str, context: ssl.SSLContext) -> None:
        self.host = host  # before super().__init__, which builds the pool manager
        self.context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, server_hostname=self.host, assert_hostname=self.host,
                                 ssl_context=self.context, **kwargs)


def _outcome(answer: requests.Response) -> Outcome:
    code, said = answer.status_code, f"HTTP {answer.status_code}"
    if 200 <= code < 300:
        return sent(None, said)
    if 300 <= code < 400:
        location = answer.headers.get("Location", "nowhere")[:EXCERPT]
        return rejected(f"{said}: redirects to {location}; webhooks do not follow redirects, "
                        "register the final URL")
    if code == 410:
        return rejected(f"{said}: endpoint gone{_excerpt(answer)}")
    if code in (408, 425, 429) or code >= 500:
        later = answer.headers.get("Retry-After")
        return retry(said + (f" (Retry-After: {later[:40]})" if later else "") + _excerpt(answer))
    return rejected(said + _excerpt(answer))


def _excerpt(answer: requests.Response) -> str:
    """The first KiB of the answer's body, as it came, on one line."""
    try:
        head = answer.raw.read(EXCERPT, decode_content=False)
    except (urllib3.exceptions.HTTPError, OSError):
        return ""
    text = " ".join(head.decode("utf-8", "replace").split())
    return f": {text}" if text else ""


def backoff(attempt: int, *, base: float = 5.0, cap: float = 3600.0,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first): a random time
    between 0 and base * 2^(attempt-1), capped at `cap` — exponential backoff with "full
    jitter", so endpoints coming back from an outage are not hit by every retry at once.
    With the defaults: up to 5 s, 10 s, 20 s… and never more than an hour."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return rng() * ceiling
