"""The online payment provider as billing sees it: open a checkout for the citizen to pay on,
verify the provider's signed callback, and ask it how a payment ended.

    POST {base_url}/checkouts             Authorization: Bearer {secret}
    {"reference": "PAY-1", "amount": "1275.00", "currency": "MXN", "description": "...",
     "return_url": "https://...", "callback_url": "https://..."}   -> {"id": "chk_1", "url": "..."}
    GET  {base_url}/checkouts?reference=PAY-1  -> {"id", "reference", "status", "amount", ...}

A callback is a JSON body signed `X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
(deploy/local/fake_payments.py speaks all of this). Amounts travel as strings of pesos, never as
JSON numbers: a float is already a wrong bill (services/billing/money.py)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from services.billing import money

STATUSES = ("approved", "declined")
CURRENCY = "MXN"
DETAIL_LENGTH = 200  # of the provider's error text in our message: enough to read, not a page


class PaymentProviderError(Exception):
    """The provider is down, too slow, or refuses us: billing answers 503 or 502, nothing paid."""


class BadCallback(ValueError):
    """A callback not signed by the provider, signed too long ago, or not a payment: refused."""


@dataclass(frozen=True)
class Checkout:
    """The provider's page where the citizen pays: send them to `url`."""

    id: str
    url: str


@dataclass(frozen=True)
class Callback:
    """How a checkout ended, in the provider's word: approved (with its authorization) or
    declined. Also what `status` answers for a checkout no longer pending."""

    checkout_id: str
    reference: str
    status: str
    amount: Decimal
    authorization: str | None
    paid_at: datetime


class PaymentProvider:
    """The provider's API at `base_url`, with our `secret` (bearer token and callback key)."""

    def __init__(self, base_url: str, secret: str, timeout: float = 10.0,
                 tolerance: int = 300) -> None:
        self.base_url = _base_url(base_url)
        if not secret or not secret.isprintable() or " " in secret:  # never echoed
            raise ValueError("the payment provider's secret is required, as one printable word")
        self.secret, self.timeout, self.tolerance = secret, float(timeout), int(tolerance)
        # One session, so that its pooled connections are reused between payments.
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {secret}",
                                     "Accept": "application/json"})

    def start(self, reference: str, amount: Decimal, description: str, return_url: str,
              callback_url: str) -> Checkout:
        """Open (or find again: the reference is the provider's idempotency key) the checkout of
        one payment. Raises PaymentProviderError when the provider does not take it."""
        pesos = money.parse(amount)
        if pesos <= 0:
            raise ValueError(f"a payment is of more than 0 pesos, not {pesos}")
        answer = self._call("POST", "/checkouts", json={
            "reference": reference, "amount": str(pesos), "currency": CURRENCY,
            "description": description, "return_url": return_url, "callback_url": callback_url})
        checkout_id, url = answer.get("id"), answer.get("url")
        if not (isinstance(checkout_id, str) and checkout_id and isinstance(url, str)
                and urlsplit(url).scheme in ("http", "https")):
            raise PaymentProviderError("the payment provider opened a checkout without id or url")
        return Checkout(checkout_id, url)

    def verify_callback(self, body: bytes, signature_header: str | None,
                        now: float | None = None) -> Callback:
        """The payment a callback tells of, once its signature is ours and recent. Raises
        BadCallback otherwise: such a request is answered 400 and changes nothing."""
        stamp, signatures = _signature(signature_header)
        signed = f"{stamp}.".encode() + body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, given) for given in signatures):
            raise BadCallback("the callback's signature is not the provider's")
        age = (time.time() if now is None else now) - stamp
        if abs(age) > self.tolerance:  # a replay of an old callback, or a clock far off
            raise BadCallback(f"the callback was signed {int(age)} s from now, over "
                              f"{self.tolerance} s")
        try:
            data = json.loads(body)
        except ValueError as error:
            raise BadCallback("the callback's body is not JSON") from error
        return _payment(data)

    def status(self, reference: str) -> Callback | None:
        """How the payment of `reference` ended, or None while it has not (pending, or never
        opened: either way nothing was charged). For a checkout whose callback never came."""
        answer = self._call("GET", "/checkouts", params={"reference": reference},
                            missing_ok=True)
        if not answer or answer.get("status") == "pending":
            return None
        try:
            return _payment(answer)
        except BadCallback as error:
            raise PaymentProviderError(f"the payment provider's answer is not a payment: "
                                       f"{error}") from error

    def _call(self, method: str, path: str, missing_ok: bool = False,
              **options: Any) -> dict[str, Any]:
        """The provider's JSON answer; {} for a 404 when `missing_ok`."""
        host = urlsplit(self.base_url).netloc
        try:
            response = self.session.request(method, f"{self.base_url}{path}",
                                            timeout=self.timeout, allow_redirects=False,
                                            **options)
        except requests.RequestException as error:
            raise PaymentProviderError(self._clean(
                f"the payment provider at {host} did not answer: {type(error).__name__}"
            )) from error
        with response:
            if response.status_code == 404 and missing_ok:
                return {}
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not 200 <= response.status_code < 300:
                said = answer.get("error") if isinstance(answer, dict) else None
                text = said if isinstance(said, str) else response.text[:DETAIL_LENGTH]
                raise PaymentProviderError(self._clean(
                    f"the payment provider at {host} answered {response.status_code}: {text}"))
            if not isinstance(answer, dict):
                raise PaymentProviderError(f"the payment provider at {host} answered "
                                           f"{response.status_code} without a JSON object")
            return answer

    def _clean(self, message: str) -> str:
        """One line, not too long, and never our secret, whatever the provider echoed."""
        return " ".join(message.replace(self.secret, "[secret]").split())[:DETAIL_LENGTH * 2]


def _signature(header: str | None) -> tuple[int, list[str]]:
    """`t=1700000000,v1=<hex>` as (1700000000, [<hex>]); v1 may repeat (a secret rotation)."""
    stamp, signatures = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            stamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if stamp is None or not signatures:
        raise BadCallback("the callback has no X-Signature of the form t=<unix>,v1=<hex>")
    return stamp, signatures


def _payment(data: Any) -> Callback:
    """A callback's (or a status answer's) JSON as a Callback; BadCallback if it is not one."""
    if not isinstance(data, dict):
        raise BadCallback("a callback is a JSON object")
    checkout_id, reference, status = data.get("id"), data.get("reference"), data.get("status")
    if not (isinstance(checkout_id, str) and checkout_id and isinstance(reference, str)
            and reference):
        raise BadCallback("a callback names its checkout 'id' and 'reference'")
    if status not in STATUSES:
        raise BadCallback(f"a callback's status is approved or declined, not {status!r}")
    if data.get("currency") != CURRENCY:
        raise BadCallback(f"a callback is in {CURRENCY}, not {data.get('currency')!r}")
    if not isinstance(data.get("amount"), str):  # a JSON number may have been a float
        raise BadCallback(f"a callback's amount is a string of pesos, not {data.get('amount')!r}")
    try:
        amount = money.parse(data["amount"])
    except ValueError as error:
        raise BadCallback(f"a callback's amount: {error}") from error
    except ArithmeticError:  # more digits than a Decimal holds
        raise BadCallback("a callback's amount has more digits than any payment") from None
    authorization = data.get("authorization") if status == "approved" else None
    if status == "approved" and not (isinstance(authorization, str) and authorization):
        raise BadCallback("an approved payment names its 'authorization'")
    return Callback(checkout_id, reference, status, amount, authorization,
                    _moment(data.get("paid_at")))


def _moment(text: Any) -> datetime:
    """ISO-8601 with its offset ("2026-03-01T10:00:00Z") as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadCallback(f"a callback's paid_at is ISO-8601 with its offset, not {text!r}")
    return moment.astimezone(UTC)


def _base_url(url: str) -> str:
    """The provider's base address: http(s), no credentials in it (the secret travels in a
    header), and http only to this machine, where no one can read the secret on the way."""
    url = str(url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the payment provider's address is http(s), not {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("the payment provider's address is plain: no credentials, query or "
                         "fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"http to {parts.hostname} would send the secret in the clear: use "
                         "https")
    return url


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
