"""Who may upload a photo to intake, and how many: a citizen needs a short-lived upload ticket
(signed by intake; rendered into the portal's form, asked for by the app or the chatbot's
adapter), each ticket takes a bounded number of photos, and each client has an hourly quota kept
in intake's database (so every replica counts together). Staff upload with their bearer token,
under a larger quota of their own."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request

from shared.chassis.secrets import UPLOAD_TICKET_DEVELOPMENT_SECRET as DEVELOPMENT_SECRET

from .store import IntakeStore

WINDOW = timedelta(hours=1)
DEFAULTS = {"UPLOAD_TICKET_TTL_SECONDS": 3600, "UPLOAD_TICKET_PHOTOS": 5,
            "UPLOAD_TICKETS_PER_HOUR": 30, "PHOTO_UPLOADS_PER_HOUR": 60,
            "PHOTO_STAFF_UPLOADS_PER_HOUR": 600, "TRUSTED_PROXY_HOPS": 0}


class UploadRefused(Exception):
    """Why this upload (or ticket) is not taken: `status` 401, 403 or 429 (`retry_after`)."""

    def __init__(self, status: int, spanish: str, english: str,
                 retry_after: int | None = None) -> None:
        super().__init__(f"{spanish} / {english}")
        self.status = status
        self.spanish = spanish
        self.english = english
        self.retry_after = retry_after


@dataclass(frozen=True)
class Ticket:
    """A verified ticket. `client` is whose quota its photos count against: empty for the
    address that uploads, `chatbot:<sender>` for photos a chatbot adapter uploads for a sender."""

    id: str
    expires_at: datetime
    client: str = ""


class Tickets:
    """Issues and verifies tickets: `<payload>.<HMAC-SHA256 of it>`, both base64url, signed
    with UPLOAD_TICKET_SECRET. Nothing is stored until a ticket is used."""

    def __init__(self, secret: str, ttl: timedelta) -> None:
        if not secret:
            raise ValueError("UPLOAD_TICKET_SECRET must be set: it signs the upload tickets")
        self.key = hashlib.sha256(b"expediente upload ticket:" + secret.encode()).digest()
        self.ttl = ttl

    def issue(self, client: str = "", now: datetime | None = None) -> tuple[str, Ticket]:
        expires = int(((now or datetime.now(UTC)) + self.ttl).timestamp())
        ticket = Ticket(secrets.token_urlsafe(16), datetime.fromtimestamp(expires, UTC), client)
        payload = _b64(json.dumps({"i": ticket.id, "e": expires, "c": client},
                                  separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", ticket

    def verify(self, token: str | None, now: datetime | None = None) -> Ticket:
        if not token:
            raise UploadRefused(401, "Falta el permiso para subir la foto; recarga la página.",
                                "An upload ticket is needed: POST /api/v1/upload-tickets "
                                "and send it in X-Upload-Ticket.")
        payload, _, signature = token.strip().partition(".")
        try:
            if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
                raise ValueError("bad signature")
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            ticket = Ticket(str(fields["i"]), datetime.fromtimestamp(int(fields["e"]), UTC),
                            str(fields["c"]))
        except (ValueError, KeyError, TypeError, binascii.Error, OverflowError):
            raise UploadRefused(401, "El permiso para subir la foto no es válido; recarga la "
                                "página.", "The upload ticket is not valid.") from None
        if ticket.expires_at <= (now or datetime.now(UTC)):
            raise UploadRefused(401, "El permiso para subir la foto caducó; adjunta la foto "
                                "otra vez.", "The upload ticket has expired; get a new one.")
        return ticket

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class UploadPolicy:
    """The limits, from intake's configuration (DEFAULTS)."""

    tickets: Tickets
    photos_per_ticket: int
    tickets_per_hour: int
    photos_per_hour: int
    staff_photos_per_hour: int
    proxy_hops: int = 0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UploadPolicy:
        def number(key: str, least: int = 1) -> int:
            value = config.get(key)
            value = DEFAULTS[key] if value in (None, "") else int(value)
            if value < least:
                raise ValueError(f"{key} must be at least {least}, not {value}")
            return value

        secret = config.get("UPLOAD_TICKET_SECRET", DEVELOPMENT_SECRET)
        return cls(Tickets(str(secret or ""),
                           timedelta(seconds=number("UPLOAD_TICKET_TTL_SECONDS"))),
                   photos_per_ticket=number("UPLOAD_TICKET_PHOTOS"),
                   tickets_per_hour=number("UPLOAD_TICKETS_PER_HOUR"),
                   photos_per_hour=number("PHOTO_UPLOADS_PER_HOUR"),
                   staff_photos_per_hour=number("PHOTO_STAFF_UPLOADS_PER_HOUR"),
                   proxy_hops=number("TRUSTED_PROXY_HOPS", least=0))

    def client(self, request: Request) -> str:
        return client_of(request, self.proxy_hops)

    def issue(self, store: IntakeStore, *, address: str = "", sender: str = ""
              ) -> dict[str, Any]:
        """A ticket for the client at `address` (its photos count against the address that
        uploads them) or for a chatbot `sender` (against the sender, not the adapter's
        address); at most tickets_per_hour each hour: {"ticket", "expires_at", "photos"}."""
        client = f"chatbot:{sender}" if sender else address
        take(store, f"tickets:{client}", self.tickets_per_hour, "permisos para subir fotos",
             "upload tickets")
        token, ticket = self.tickets.issue(client if sender else "")
        return {"ticket": token, "expires_at": ticket.expires_at.isoformat(),
                "photos": self.photos_per_ticket}

    def admit_citizen(self, store: IntakeStore, token: str | None, address: str) -> None:
        """A citizen's photo may be taken: a valid ticket with photos left, within the quota of
        the ticket's client (or of the uploading address). Every attempt counts."""
        ticket = self.tickets.verify(token)
        if not store.use_ticket(ticket.id, ticket.expires_at, self.photos_per_ticket):
            raise UploadRefused(403, "Ya usaste este permiso para subir fotos; recarga la "
                                "página.", f"This ticket has taken its {self.photos_per_ticket} "
                                "photos; get a new one.")
        take(store, f"photos:{ticket.client or address}", self.photos_per_hour, "fotos", "photos")

    def admit_staff(self, store: IntakeStore, subject: str) -> None:
        take(store, f"staff:{subject}", self.staff_photos_per_hour, "fotos", "photos")


def take(store: IntakeStore, counter: str, per_hour: int, spanish: str, english: str) -> None:
    """Count one use of `counter` in this hour's window, or 429 with the seconds until the next."""
    now = datetime.now(UTC)
    window = now.replace(minute=0, second=0, microsecond=0)
    if not store.take_allowance(counter, window, per_hour):
        retry_after = max(1, int((window + WINDOW - now).total_seconds()))
        raise UploadRefused(429, f"Se alcanzó el límite de {per_hour} {spanish} por hora; "
                            f"intenta en {-(-retry_after // 60)} minutos.",
                            f"At most {per_hour} {english} an hour; retry after "
                            f"{retry_after} s.", retry_after)


def client_of(request: Request, proxy_hops: int) -> str:
    """The client's address: the connection's, or with `proxy_hops` trusted proxies in front
    (the ingress), the one the outermost of them saw in X-Forwarded-For. An IPv6 client counts
    by its /64, which one home or phone gets whole."""
    address = request.remote_addr or ""
    if proxy_hops:
        forwarded = [part.strip() for part in
                     request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= proxy_hops:
            address = forwarded[-proxy_hops]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class Uploads(DependencyProvider):
    """`self.uploads` in an entrypoint: the UploadPolicy of intake's configuration."""

    def setup(self) -> None:
        self.policy = UploadPolicy.from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> UploadPolicy:
        return self.policy


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
