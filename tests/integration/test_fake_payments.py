"""Billing's payment provider adapter against a real HTTP gateway: the local fake of
deploy/local/fake_payments.py, run as its own process on a free port, calling back a small
treasury door this test listens on. Doña Rosa pays her predial online: the bank approves, declines
or never answers; the gateway's callback is signed, retried until the treasury takes it, and may
come twice; billing asks the gateway about a payment whose callback never came."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from services.billing.provider import Checkout, PaymentProvider, PaymentProviderError
from tests.support import LocalServer, free_port, wait_for

pytestmark = pytest.mark.integration

SECRET = "sk_local_9d2e71"
REFERENCE = "PAY-2026-000123"
AMOUNT = Decimal("1275.00")
RETURN_URL = "http://127.0.0.1:8004/pagos/vuelta?folio=QRO-2026-000123"


class Treasury(ThreadingHTTPServer):
    """Billing's callback door, reduced to a recorder: it keeps each callback (its X-Signature
    and body) and answers 500 to the first `fail_first`, 204 to the others."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Door)
        self.received: list[tuple[str | None, bytes]] = []
        self.fail_first = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/pagos/aviso"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _Door(BaseHTTPRequestHandler):
    server: Treasury

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.headers.get("X-Signature"), body))
        failing = len(self.server.received) <= self.server.fail_first
        self.send_response(500 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Gateway(LocalServer):
    """One fake_payments.py process on a free port, logging to a folder of the test's own."""

    def __init__(self, folder: Path) -> None:
        self.journal = folder / "payments.jsonl"
        super().__init__(folder, "fake_payments.py", "--secret", SECRET, "--log",
                         str(self.journal))
        self.start()

    def mode(self, **mode: Any) -> None:
        requests.post(f"{self.url}/_mode", json=mode, timeout=5).raise_for_status()

    def checkouts(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/_checkouts", timeout=5)
        answer.raise_for_status()
        return answer.json()


@pytest.fixture
def gateway(tmp_path):
    started = Gateway(tmp_path / "gateway")
    yield started
    started.stop()


@pytest.fixture
def treasury():
    door = Treasury()
    yield door
    door.close()


@pytest.fixture
def provider(gateway):
    return PaymentProvider(gateway.url, SECRET, timeout=10)


def open_rosa_s_checkout(provider: PaymentProvider, treasury: Treasury,
                         reference: str = REFERENCE, amount: Decimal = AMOUNT) -> Checkout:
    return provider.start(reference, amount, "Predial 2026 · Calle Ñandú 14", RETURN_URL,
                          treasury.url)


def press(checkout: Checkout, outcome: str) -> requests.Response:
    """Doña Rosa presses one of the page's buttons."""
    return requests.post(checkout.url, data={"outcome": outcome}, allow_redirects=False,
                         timeout=20)


def test_rosa_pays_and_the_treasury_hears_it_signed(provider, treasury):
    checkout = open_rosa_s_checkout(provider, treasury)
    assert checkout.id.startswith("chk_") and checkout.url.endswith(f"/pay/{checkout.id}")
    page = requests.get(checkout.url, timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    for shown in ("$1,275.00 MXN", "Predial 2026 · Calle Ñandú 14", "Pagar", "Rechazar",
                  "Sin respuesta", 'name="viewport"'):
        assert shown in page.text

    back = press(checkout, "success")

    [(signature, body)] = treasury.received
    callback = provider.verify_callback(body, signature)
    assert (callback.checkout_id, callback.reference, callback.status, callback.amount) == (
        checkout.id, REFERENCE, "approved", AMOUNT)
    assert callback.authorization and callback.authorization.startswith("AUTH-")
    assert back.status_code == 303
    location = urlsplit(back.headers["Location"])
    assert location.path == "/pagos/vuelta"
    assert parse_qs(location.query) == {"folio": ["QRO-2026-000123"], "reference": [REFERENCE],
                                        "status": ["approved"]}
    assert provider.status(REFERENCE) == callback


def test_a_declined_card_is_called_back_as_declined(provider, treasury):
    back = press(open_rosa_s_checkout(provider, treasury), "decline")
    [(signature, body)] = treasury.received
    callback = provider.verify_callback(body, signature)
    assert (callback.status, callback.authorization) == ("declined", None)
    assert parse_qs(urlsplit(back.headers["Location"]).query)["status"] == ["declined"]
    assert provider.status(REFERENCE) == callback


def test_a_bank_that_does_not_answer_leaves_the_payment_pending(provider, treasury, gateway):
    checkout = open_rosa_s_checkout(provider, treasury)
    page = press(checkout, "timeout")
    assert page.status_code == 200 and "El banco no respondió" in page.text
    assert treasury.received == []
    assert provider.status(REFERENCE) is None
    assert [c["status"] for c in gateway.checkouts()] == ["pending"]
    assert provider.status("PAY-NEVER-OPENED") is None


def test_the_same_reference_opens_the_same_checkout_once(provider, treasury, gateway):
    first = open_rosa_s_checkout(provider, treasury)
    assert open_rosa_s_checkout(provider, treasury) == first
    assert len(gateway.checkouts()) == 1
    with pytest.raises(PaymentProviderError, match="409"):
        open_rosa_s_checkout(provider, treasury, amount=Decimal("1.00"))


def test_a_resent_callback_is_the_same_payment(provider, treasury, gateway):
    checkout = open_rosa_s_checkout(provider, treasury)
    press(checkout, "success")
    resent = requests.post(f"{gateway.url}/_callbacks/{checkout.id}/resend", timeout=20)
    assert resent.json() == {"delivered": True}
    (first_signature, first), (again_signature, again) = treasury.received
    assert again == first
    assert provider.verify_callback(again, again_signature) == provider.verify_callback(
        first, first_signature)


def test_a_callback_is_retried_until_the_treasury_takes_it(provider, treasury, gateway):
    treasury.fail_first = 2
    back = press(open_rosa_s_checkout(provider, treasury), "success")
    assert back.status_code == 303
    assert len(treasury.received) == 3
    assert len({body for _, body in treasury.received}) == 1
    for signature, body in treasury.received:
        assert provider.verify_callback(body, signature).status == "approved"
    [delivery] = gateway.checkouts()[0]["deliveries"]
    assert [attempt["status"] for attempt in delivery["attempts"]] == [500, 500, 204]


def test_a_treasury_that_never_takes_it_is_tried_five_times_and_rosa_is_sent_back(
        provider, treasury, gateway):
    treasury.fail_first = 99
    back = press(open_rosa_s_checkout(provider, treasury), "success")
    assert back.status_code == 303 and len(treasury.received) == 5
    assert gateway.checkouts()[0]["deliveries"][0]["delivered"] is False
    assert provider.status(REFERENCE).status == "approved"  # billing can still learn of it


@pytest.mark.parametrize(("outcome", "status"), [("success", "approved"),
                                                 ("decline", "declined")])
def test_auto_mode_completes_a_checkout_without_a_browser(provider, treasury, gateway, outcome,
                                                          status):
    gateway.mode(auto=outcome)
    open_rosa_s_checkout(provider, treasury)
    wait_for(lambda: treasury.received, timeout=10, message="the callback")
    [(signature, body)] = treasury.received
    assert provider.verify_callback(body, signature).status == status
    assert provider.status(REFERENCE) == provider.verify_callback(body, signature)


def test_auto_timeout_then_reset(provider, treasury, gateway):
    gateway.mode(auto="timeout")
    open_rosa_s_checkout(provider, treasury)
    assert provider.status(REFERENCE) is None
    gateway.mode(reset=True)
    checkout = open_rosa_s_checkout(provider, treasury, reference="PAY-2026-000124")
    assert [c["status"] for c in gateway.checkouts()] == ["pending", "pending"]
    press(checkout, "success")
    assert len(treasury.received) == 1


def test_the_gateway_refuses_a_call_without_our_secret(gateway, treasury):
    body = {"reference": REFERENCE, "amount": "1275.00", "currency": "MXN", "description": "x",
            "return_url": RETURN_URL, "callback_url": treasury.url}
    assert requests.post(f"{gateway.url}/checkouts", json=body, timeout=5).status_code == 401
    assert requests.get(f"{gateway.url}/checkouts?reference={REFERENCE}",
                        timeout=5).status_code == 401
    stranger = PaymentProvider(gateway.url, "sk_wrong_secret")
    with pytest.raises(PaymentProviderError, match="401") as refused:
        open_rosa_s_checkout(stranger, treasury)
    assert "sk_wrong_secret" not in str(refused.value)


@pytest.mark.parametrize("change", [
    {"amount": 1275.0}, {"amount": "1275"}, {"amount": "0.00"}, {"amount": "-5.00"},
    {"reference": "PAY 1"}, {"reference": "P" * 65}, {"currency": "USD"}, {"description": 7},
    {"return_url": "ftp://x"}, {"callback_url": None}])
def test_the_gateway_refuses_a_checkout_it_cannot_open(gateway, treasury, change):
    body = {"reference": REFERENCE, "amount": "1275.00", "currency": "MXN", "description": "x",
            "return_url": RETURN_URL, "callback_url": treasury.url, **change}
    answer = requests.post(f"{gateway.url}/checkouts", json=body, timeout=5,
                           headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 400 and answer.json()["error"]


def test_a_gateway_that_is_down_is_a_provider_error(provider, treasury, gateway):
    gateway.mode(down=True)
    with pytest.raises(PaymentProviderError, match="503"):
        open_rosa_s_checkout(provider, treasury)
    with pytest.raises(PaymentProviderError, match="503"):
        provider.status(REFERENCE)
    nobody = PaymentProvider(f"http://127.0.0.1:{free_port()}", SECRET, timeout=2)
    with pytest.raises(PaymentProviderError, match="did not answer") as unreachable:
        nobody.status(REFERENCE)
    assert SECRET not in str(unreachable.value)


def test_the_journal_has_a_line_per_checkout_and_callback(provider, treasury, gateway):
    press(open_rosa_s_checkout(provider, treasury), "success")
    checkout, callback = map(json.loads, gateway.journal.read_text().splitlines())
    assert (checkout["event"], checkout["reference"], checkout["status"]) == (
        "checkout", REFERENCE, "pending")
    assert (callback["event"], callback["delivered"]) == ("callback", True)
    assert SECRET not in gateway.journal.read_text()
