"""The chassis' HTTP layer in a real nameko container on a local port (no broker, no database):
bodies over the limit refused before the entrypoint runs, JSON read safely, request ids, bare
500s, security headers and an access log without secrets."""

from __future__ import annotations

import json
import logging
import socket

import pytest
import requests
from marshmallow import ValidationError
from nameko.containers import ServiceContainer
from werkzeug.wrappers import Request, Response

from shared.chassis import health
from shared.chassis.auth import Unauthenticated
from shared.chassis.errortable import BASE
from shared.chassis.http import http, json_errors, json_response, read_json
from tests.support import free_port

LIMIT = 1024
RAN: list[str] = []  # entrypoints that ran, in order
http_errors = json_errors(BASE)


class Desk(health.Health):
    """A small service: a JSON door behind a token, a page, and a door that fails."""

    name = "desk"

    @http("POST", "/notes", max_body=LIMIT)
    @http_errors
    def post_note(self, request: Request) -> Response:
        RAN.append("post_note")
        if request.headers.get("Authorization") != "Bearer ok":
            raise Unauthenticated("no bearer token")
        return json_response({"note": read_json(request)}, 201)

    @http("GET", "/page", html=True)
    def page(self, request: Request) -> Response:
        return Response("<!doctype html><p>Hola</p>", mimetype="text/html")

    @http("GET", "/broken")
    @http_errors
    def broken(self, request: Request) -> Response:
        raise RuntimeError("password=hunter2 in the connection string")

    @http("GET", "/broken-page", html=True)
    def broken_page(self, request: Request) -> Response:
        raise RuntimeError("password=hunter2 in the connection string")

    @http("GET", "/invalid")
    @http_errors
    def invalid(self, request: Request) -> Response:
        raise ValidationError({"folio": ["not a folio"]})

    def readiness(self) -> tuple[bool, dict]:
        return False, {"store": False}


@pytest.fixture(scope="module")
def desk():
    port = free_port()
    container = ServiceContainer(Desk, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                                        "AMQP_URI": "memory://"})
    container.start()
    yield f"http://127.0.0.1:{port}", port
    container.stop()


def raw(port: int, request: bytes) -> bytes:
    """Send `request`; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_body_declared_too_large_is_refused_before_it_is_sent_and_before_auth(desk):
    url, port = desk
    RAN.clear()
    # The body is never sent: the answer comes, and the connection closes, without it.
    answer = raw(port, b"POST /notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 20000000\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert RAN == []  # neither the token check nor anything else ran


def test_a_chunked_body_over_the_limit_is_refused_and_one_within_is_read(desk):
    url, port = desk
    RAN.clear()

    def chunks(total: int):
        for _ in range(total // 100):
            yield b"[" + b" " * 98 + b"]"

    refused = requests.post(f"{url}/notes", data=chunks(5000), headers={
        "Authorization": "Bearer ok", "Content-Type": "application/json"}, timeout=10)
    assert refused.status_code == 413 and RAN == []

    body = json.dumps({"text": "x" * 600}).encode()
    accepted = requests.post(f"{url}/notes", data=iter([body[:300], body[300:]]), headers={
        "Authorization": "Bearer ok", "Content-Type": "application/json"}, timeout=10)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json() == {"note": {"text": "x" * 600}}


def test_a_body_within_the_limit_reaches_the_door(desk):
    url, _ = desk
    response = requests.post(f"{url}/notes", json={"text": "hola"},
                             headers={"Authorization": "Bearer ok"}, timeout=10)
    assert response.status_code == 201 and response.json() == {"note": {"text": "hola"}}
    unauthenticated = requests.post(f"{url}/notes", json={}, timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    assert unauthenticated.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(("body", "says"), [
    (b"[" * 40 + b"]" * 40, "deeper than 32"),
    (b'{"text": "\xff\xfe"}', "UTF-8"),
    (b'{"text": "\\ud800"}', "surrogate"),
    (b'{"a": [{"b": "ok \\udfff"}]}', "surrogate"),
    (b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}", "deeper than 32"),
    (b'{"n": NaN}', "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"{oops", "not valid JSON"),
])
def test_bodies_that_are_not_a_json_object_get_a_400_that_says_why(desk, body, says):
    url, _ = desk
    response = requests.post(f"{url}/notes", data=body, timeout=10, headers={
        "Authorization": "Bearer ok", "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "invalid_input"
    assert response.json()["errors"]["_body"]


def test_brackets_inside_strings_and_paired_surrogates_are_plain_text(desk):
    url, _ = desk
    text = "[{" * 40 + " \U0001F600 " + "\\ud800"  # an emoji as an escaped pair, no lone one
    body = json.dumps({"text": text}).encode()  # json.dumps escapes the emoji as \ud83d\ude00
    response = requests.post(f"{url}/notes", data=body, timeout=10, headers={
        "Authorization": "Bearer ok", "Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json() == {"note": {"text": text}}


def test_deep_json_within_the_size_limit_is_a_400_not_a_recursion_error(desk):
    url, port = desk
    deep = b"[" * 500 + b"]" * 500
    answer = raw(port, b"POST /notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\n"
                       b"Connection: close\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(deep), deep))
    assert answer.startswith(b"HTTP/1.1 400") and b"deeper than 32" in answer


def test_every_answer_carries_a_request_id_taken_when_sane(desk):
    url, _ = desk
    given = requests.get(f"{url}/healthz", headers={"X-Request-Id": "abc-123.x"}, timeout=10)
    assert given.headers["X-Request-Id"] == "abc-123.x"
    made = requests.get(f"{url}/healthz", headers={"X-Request-Id": "<script>"}, timeout=10)
    assert made.headers["X-Request-Id"] not in ("<script>", "")
    assert len(requests.get(f"{url}/healthz", timeout=10).headers["X-Request-Id"]) == 32


def test_an_unexpected_failure_is_a_500_with_only_the_request_id(desk, caplog):
    url, _ = desk
    with caplog.at_level(logging.ERROR):
        response = requests.get(f"{url}/broken", headers={"X-Request-Id": "req-500"},
                                timeout=10)
        page = requests.get(f"{url}/broken-page", headers={"X-Request-Id": "req-501"},
                            timeout=10)
    assert response.status_code == 500 and page.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": response.json()[
        "error"]["message"], "request_id": "req-500"}, "errors": response.json()["errors"]}
    for answer in (response, page):
        assert "hunter2" not in answer.text and "RuntimeError" not in answer.text
    assert "req-501" in page.text and page.headers["Content-Type"].startswith("text/html")
    logged = [r for r in caplog.records if r.exc_info and "req-500" in r.getMessage()]
    assert logged and logged[0].levelno == logging.ERROR  # the traceback, for operators


def test_unknown_routes_and_methods_answer_the_wire_codes(desk):
    url, _ = desk
    missing = requests.get(f"{url}/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = requests.delete(f"{url}/notes", timeout=10)
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


def test_known_errors_keep_their_field_messages(desk):
    response = requests.get(f"{desk[0]}/invalid", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"folio": ["not a folio"]}
    assert response.json()["errors"] == {"folio": ["not a folio"]}


def test_security_headers_on_pages_and_json(desk):
    url, _ = desk
    page = requests.get(f"{url}/page", timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    for answer in (page, requests.get(f"{url}/healthz", timeout=10)):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_health_mixin_asks_the_service_if_it_is_ready(desk):
    url, _ = desk
    assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json() == {"ready": False, "store": False}
    assert "expediente_http_error_answers_total" in requests.get(f"{url}/metrics",
                                                                 timeout=10).text


def test_the_access_log_never_shows_a_token_or_api_key(desk, caplog):
    url, _ = desk
    with caplog.at_level(logging.INFO):
        requests.get(f"{url}/healthz?token=abc123&lang=es&api_key=k-789", timeout=10)
        requests.get(f"{url}/nothing?Access_Token=abc123", timeout=10)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/healthz?token=[redacted]&lang=es&api_key=[redacted]" in text
    assert "abc123" not in text and "k-789" not in text


def test_pages_may_show_photos_from_the_trusted_media_origins_only_besides_https():
    from shared.chassis.http import content_security_policy

    csp = content_security_policy("http://127.0.0.1:8000/media/, javascript:alert(1),"
                                  "http://a b/media/")
    img = next(part for part in csp.split("; ") if part.startswith("img-src"))
    assert img == "img-src 'self' https: http://127.0.0.1:8000"


def test_a_page_s_form_may_lead_to_the_status_page_and_nowhere_else():
    from shared.chassis.http import content_security_policy

    csp = content_security_policy("", "https://seguimiento.example.gob.mx/seguimiento")
    forms = next(part for part in csp.split("; ") if part.startswith("form-action"))
    assert forms == "form-action 'self' https://seguimiento.example.gob.mx"
    assert "form-action 'self';" in content_security_policy("", "")


def test_a_request_without_a_body_keeps_its_connection_even_when_refused(desk):
    _, port = desk
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for path, status in ((b"/nothing-here", b"404"), (b"/healthz", b"200")):
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert reader.readline().startswith(b"HTTP/1.1 " + status)
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)


def test_a_body_shorter_than_its_content_length_is_a_400(desk):
    _, port = desk
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)  # the client sent all it will
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"ended before" in answer


class Misfit:
    """A route whose variable the method does not take."""

    name = "misfit"

    @http("GET", "/reports/<string:folio>")
    def report(self, request: Request, number: str) -> Response:
        return Response("never")


def test_a_route_that_does_not_fit_its_method_stops_the_service_at_start_up():
    from nameko.exceptions import IncorrectSignature

    container = ServiceContainer(Misfit, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
                                          "AMQP_URI": "memory://"})
    with pytest.raises(IncorrectSignature, match="folio"):
        container.start()
    container.kill()


class Fits:
    name = "fits"

    @http("GET", "/reports/<string:folio>/photos/<int:number>")
    def photo(self, request: Request, folio: str, number: int) -> Response:
        return json_response({"folio": folio, "number": number})


def test_a_route_s_variables_reach_the_method_checked_once_at_start_up():
    port = free_port()
    container = ServiceContainer(Fits, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                                        "AMQP_URI": "memory://"})
    container.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/reports/QRO-1/photos/2", timeout=10)
        assert answer.json() == {"folio": "QRO-1", "number": 2}
    finally:
        container.stop()
