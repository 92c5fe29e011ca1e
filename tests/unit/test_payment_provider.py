"""A callback from the payment provider is believed only when it is signed with our secret, signed
recently, and tells of a payment in exact pesos: Doña Rosa's predial paid online is recorded once
the bank approves it, and a forged or replayed "approved" never settles a bill. No network."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.billing.provider import BadCallback, Callback, PaymentProvider

SECRET = "sk_test_5f0c"
NOW = 1_780_000_000  # the moment the treasury's server receives the callback
PROVIDER = PaymentProvider("http://127.0.0.1:8030", SECRET)
APPROVED = {"id": "chk_7", "reference": "PAY-2026-000123", "status": "approved",
            "amount": "1275.00", "currency": "MXN", "authorization": "AUTH-3F9A1C",
            "paid_at": "2026-06-01T16:26:40Z"}


def signed(payload: dict[str, object] | bytes, secret: str = SECRET, at: int = NOW
           ) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={at},v1={digest}"


def verify(body: bytes, header: str | None, now: float = NOW) -> Callback:
    return PROVIDER.verify_callback(body, header, now=now)


def test_dona_rosa_s_approved_payment_is_believed():
    callback = verify(*signed(APPROVED))
    assert callback == Callback(checkout_id="chk_7", reference="PAY-2026-000123",
                                status="approved", amount=Decimal("1275.00"),
                                authorization="AUTH-3F9A1C",
                                paid_at=datetime(2026, 6, 1, 16, 26, 40, tzinfo=UTC))


def test_a_declined_card_is_believed_without_authorization():
    declined = {**APPROVED, "status": "declined"}
    del declined["authorization"]
    callback = verify(*signed(declined))
    assert (callback.status, callback.authorization) == ("declined", None)


def test_a_callback_signed_within_the_tolerance_either_side_is_believed():
    assert verify(*signed(APPROVED, at=NOW - 300)).reference == "PAY-2026-000123"
    assert verify(*signed(APPROVED, at=NOW + 300)).reference == "PAY-2026-000123"


def test_a_signature_among_several_is_enough_during_a_secret_rotation():
    body, header = signed(APPROVED)
    assert verify(body, f"t={NOW},v1={'0' * 64},{header.split(',')[1]}").status == "approved"


def test_a_callback_signed_with_another_secret_is_refused():
    with pytest.raises(BadCallback, match="signature"):
        verify(*signed(APPROVED, secret="sk_someone_else"))


def test_an_amount_changed_on_the_way_is_refused():
    body, header = signed(APPROVED)
    with pytest.raises(BadCallback, match="signature"):
        verify(body.replace(b"1275.00", b"12.75"), header)


def test_an_old_callback_replayed_is_refused():
    with pytest.raises(BadCallback, match="over 300 s"):
        verify(*signed(APPROVED, at=NOW - 301))
    with pytest.raises(BadCallback, match="over 300 s"):
        verify(*signed(APPROVED, at=NOW + 301))


def test_a_callback_without_a_signature_is_refused():
    body, _ = signed(APPROVED)
    for header in (None, ""):
        with pytest.raises(BadCallback, match="no X-Signature"):
            verify(body, header)


@pytest.mark.parametrize("header", [
    "v1=abc", f"t={NOW}", f"t=yesterday,v1={'a' * 64}", f"t={NOW};v1={'a' * 64}", "garbage"])
def test_a_malformed_signature_header_is_refused(header):
    body, _ = signed(APPROVED)
    with pytest.raises(BadCallback):
        verify(body, header)


def test_an_amount_as_a_json_number_is_refused_even_when_signed():
    with pytest.raises(BadCallback, match="string of pesos"):
        verify(*signed({**APPROVED, "amount": 1275.0}))
    with pytest.raises(BadCallback, match="string of pesos"):
        verify(*signed({**APPROVED, "amount": 1275}))


@pytest.mark.parametrize("amount", ["1,275.00", "$1275", "1275.001", "", "mil"])
def test_an_amount_that_is_not_pesos_and_centavos_is_refused(amount):
    with pytest.raises(BadCallback, match="amount"):
        verify(*signed({**APPROVED, "amount": amount}))


@pytest.mark.parametrize("status", ["pending", "APPROVED", "refunded", None])
def test_a_status_that_is_not_an_outcome_is_refused(status):
    with pytest.raises(BadCallback, match="status"):
        verify(*signed({**APPROVED, "status": status}))


@pytest.mark.parametrize("change", [
    {"currency": "USD"}, {"id": ""}, {"reference": None}, {"authorization": None},
    {"paid_at": "2026-06-01 16:26"}, {"paid_at": "2026-06-01T16:26:40"}, {"paid_at": 1780000000}])
def test_a_callback_that_is_not_a_whole_payment_is_refused(change):
    with pytest.raises(BadCallback):
        verify(*signed({**APPROVED, **change}))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_a_signed_body_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(BadCallback):
        verify(*signed(body))


def test_the_provider_must_be_reached_safely():
    with pytest.raises(ValueError, match="in the clear"):
        PaymentProvider("http://pagos.example.com", SECRET)
    with pytest.raises(ValueError, match="secret"):
        PaymentProvider("https://pagos.example.com", "")
    with pytest.raises(ValueError, match="plain"):
        PaymentProvider(f"https://user:{SECRET}@pagos.example.com", SECRET)
