"""What an attacker tried against the running services: huge and deeply nested bodies before any
token is checked, secrets in logged URLs, pages without security headers, and a closed report
that came back from intake as a 502."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.support import bearer

pytestmark = pytest.mark.e2e

POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392}, "channel": "window", "sla_hours": 72}
MB20 = 20 * 1024 * 1024


def send(port: int, head: bytes, body_part: bytes = b"") -> bytes:
    """Send a request's head and the start of its body; what the service answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + body_part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize(("service", "path"), [
    ("tracking", "/reports"), ("intake", "/staff/reports"), ("intake", "/api/v1/reports"),
    ("intake", "/chatbot/webhook"), ("intake", "/open311/v2/requests.json"),
])
def test_a_20_mb_body_is_refused_with_413_before_any_token_is_checked(stack, service, path):
    port = getattr(stack, service).port
    declared = send(port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % (path.encode(), MB20), b"{" * 65536)
    assert declared.startswith(b"HTTP/1.1 413"), declared[:300]
    assert b'"payload_too_large"' in declared

    chunk = b"%x\r\n%s\r\n" % (65536, b"[" * 65536)
    chunked = send(port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" % path.encode(), chunk * 4)
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:300]


def test_6_kb_deep_json_is_a_400_before_any_token_is_checked(stack):
    deep = "[" * 6000 + "]" * 6000
    for url, headers in ((f"{stack.tracking.url}/reports", {}),
                         (f"{stack.intake.url}/api/v1/reports",
                          {"Idempotency-Key": "7d2f3c1e-0b1a-4c5d-8e9f-0a1b2c3d4e5f"})):
        response = requests.post(url, data=deep, timeout=20, headers={
            **headers, "Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_input"
        assert "deeper than" in response.json()["error"]["message"]
    assert "RecursionError" not in stack.tracking.log_path.read_text()


def test_pages_carry_the_security_headers(stack):
    folio = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE,
                          headers=bearer("operator"), timeout=10).json()["folio"]
    pages = [f"{stack.tracking.url}/", f"{stack.tracking.url}/seguimiento/{folio}",
             f"{stack.intake.url}/", f"{stack.intake.url}/reportar/bache",
             f"{stack.intake.url}/folio/{folio}", f"{stack.intake.url}/folio/QRO-2026-999999"]
    for url in pages:
        page = requests.get(url, timeout=10, headers={"Accept": "text/html"})
        assert page.headers["Content-Type"].startswith("text/html"), url
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert "<style>" not in page.text and "<script>" not in page.text, url
        assert " onsubmit=" not in page.text and " onclick=" not in page.text, url
    for asset in (f"{stack.tracking.url}/static/status.css",
                  f"{stack.intake.url}/static/portal.css",
                  f"{stack.intake.url}/static/report_form.js"):
        assert requests.get(asset, timeout=10).status_code == 200, asset
    api = requests.get(f"{stack.intake.url}/api/v1/services", timeout=10)
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Referrer-Policy"] == "no-referrer"


def test_the_lookup_form_works_without_a_script(stack):
    answer = requests.get(f"{stack.tracking.url}/?folio=QRO-2026-000001", timeout=10,
                          allow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/seguimiento/QRO-2026-000001"


def test_tokens_and_api_keys_never_reach_the_access_logs(stack):
    opened = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE,
                           headers=bearer("operator"), timeout=10).json()
    folio, token = opened["folio"], opened["access_token"]
    requests.get(f"{stack.intake.url}/folio/{folio}?token={token}", timeout=10)
    requests.get(f"{stack.intake.url}/folio/{folio}?token=abc123", timeout=10)
    requests.get(f"{stack.tracking.url}/reports/{folio}?token=abc123", timeout=10)
    requests.get(f"{stack.intake.url}/open311/v2/requests.json?api_key=abc123", timeout=10)
    for service in (stack.intake, stack.tracking):
        log = service.log_path.read_text()
        assert "token=[redacted]" in log
        assert "abc123" not in log and token not in log


def test_marking_a_closed_report_as_a_duplicate_is_a_409_report_closed_as_tracking_says(stack):
    staff = bearer("operator")
    first = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE, headers=staff,
                          timeout=10).json()["folio"]
    second = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE, headers=staff,
                           timeout=10).json()["folio"]
    closed = requests.post(f"{stack.tracking.url}/reports/{second}/close_report",
                           json={"resolution": "cancelled"}, headers=bearer("supervisor"),
                           timeout=10)
    assert closed.status_code == 200, closed.text

    direct = requests.post(f"{stack.tracking.url}/reports/{second}/mark_duplicate",
                           json={"duplicate_of": first}, headers=bearer("supervisor"),
                           timeout=10)
    through_intake = requests.post(f"{stack.intake.url}/staff/reports/{second}/mark_duplicate",
                                   json={"duplicate_of": first}, headers=staff, timeout=10)

    assert direct.status_code == through_intake.status_code == 409, through_intake.text
    assert direct.json()["error"]["code"] == through_intake.json()["error"]["code"] == \
        "report_closed"
