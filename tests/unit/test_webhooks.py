"""What a municipal system receiving our webhooks can rely on, checked without a network: our
signatures verify with an independent Standard Webhooks implementation (also while a secret is
rotated, with either secret) and a tampered message does not; we refuse to post to any URL that
would reach the municipality's own network or this machine; retries back off, with jitter."""

from __future__ import annotations

import base64
import socket
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notifications.webhooks import (
    USER_AGENT,
    RefusedUrl,
    UnresolvedHost,
    WebhookSender,
    backoff,
    check_url,
    headers,
    new_secret,
    sign,
)

BODY = (b'{"specversion":"1.0","id":"7d4f0c2e","source":"/tracking",'
        b'"type":"mx.expediente.report.crew_en_route","subject":"QRO-2026-000123","data":{}}')
MESSAGE_ID = "7d4f0c2e:sub-7"


def resolving(*addresses: str):
    """A resolver that answers every name with `addresses`, as socket.getaddrinfo would."""
    def resolve(host, port):
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6,
                 "", (address, port)) for address in addresses]
    return resolve


def unresolvable(host, port):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


PUBLIC = resolving("203.0.114.10")  # outside every reserved block (203.0.113/24 is one)


def signed_now(secrets, body=BODY, message_id=MESSAGE_ID):
    return headers(secrets, message_id, int(time.time()), body)


def test_a_receiver_with_the_standard_webhooks_library_verifies_our_signature():
    secret = new_secret()
    sent = signed_now([secret])
    assert Webhook(secret).verify(BODY, sent) == Webhook(secret).verify(BODY.decode(), sent)
    assert sent["webhook-signature"].startswith("v1,")
    assert sent["Content-Type"] == "application/cloudevents+json"
    assert sent["User-Agent"] == USER_AGENT == "Expediente-Webhooks/1"
    assert (sent["webhook-id"], sent["webhook-timestamp"].isdigit()) == (MESSAGE_ID, True)


def test_during_a_rotation_a_receiver_holding_either_secret_verifies_and_no_other():
    new, old = new_secret(), new_secret()
    sent = signed_now([new, old])
    assert len(sent["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, sent)
    Webhook(old).verify(BODY, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, sent)


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "signature"])
def test_a_message_changed_on_the_way_is_refused_by_the_receiver(tamper):
    secret = new_secret()
    sent, body = signed_now([secret]), BODY
    if tamper == "body":
        body = BODY.replace(b"crew_en_route", b"resolved")
    elif tamper == "id":
        sent["webhook-id"] = "7d4f0c2e:sub-8"
    elif tamper == "timestamp":
        sent["webhook-timestamp"] = str(int(sent["webhook-timestamp"]) - 60)
    else:
        sent["webhook-signature"] = signed_now([new_secret()])["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, sent)


def test_the_signature_is_the_one_the_specification_gives_for_its_example():
    # The example of the Standard Webhooks specification's "Signature scheme" section.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_new_secret_is_32_random_bytes_in_the_standard_form():
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


@pytest.mark.parametrize("secrets", [
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],  # no whsec_ prefix
    ["whsec_"],
    ["whsec_not base64!"],
    ["whsec_" + base64.b64encode(b"too short").decode()],
    [new_secret(), "whsec_" + base64.b64encode(bytes(65)).decode()],  # one bad spoils the lot
    [],
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # one secret, not a list of them
], ids=["no-prefix", "empty", "not-base64", "too-short", "too-long", "none", "a-string"])
def test_a_malformed_secret_is_a_value_error_not_a_signature(secrets):
    with pytest.raises(ValueError, match="secret"):
        sign(secrets, MESSAGE_ID, 1614265330, BODY)


@pytest.mark.parametrize("message_id", ["", "a.b", "ev 1", "ev\r\nX-Evil: 1", "é", "x" * 257])
def test_a_message_id_that_could_be_read_two_ways_or_break_a_header_is_refused(message_id):
    with pytest.raises(ValueError, match="webhook id"):
        sign([new_secret()], message_id, 1614265330, BODY)


HOSTILE = [
    # (what a registration gives us, what the name resolves to, a word of the reason)
    ("http://avisos.example.com/hook", PUBLIC, "https://"),
    ("https://user:password@avisos.example.com/hook", PUBLIC, "password"),
    ("https://avisos.example.com@evil.example/hook", PUBLIC, "password"),
    ("https://127.0.0.1/hook", PUBLIC, "loopback"),
    ("https://127.1/hook", PUBLIC, "standard form"),
    ("https://2130706433/hook", PUBLIC, "standard form"),
    ("https://localhost/hook", resolving("127.0.0.1", "::1"), "loopback"),
    ("https://169.254.169.254/latest/meta-data/", PUBLIC, "metadata"),
    ("https://[fe80::1]/hook", PUBLIC, "link-local"),
    ("https://[::1]/hook", PUBLIC, "loopback"),
    ("https://[::ffff:10.0.0.1]/hook", PUBLIC, "private"),
    ("https://[::ffff:127.0.0.1]/hook", PUBLIC, "loopback"),
    ("https://[64:ff9b::a9fe:a9fe]/hook", PUBLIC, "link-local"),  # NAT64 of 169.254.169.254
    ("https://[fd00::5]/hook", PUBLIC, "private"),
    ("https://10.20.30.40/hook", PUBLIC, "private"),
    ("https://172.16.0.9/hook", PUBLIC, "private"),
    ("https://192.168.1.20/hook", PUBLIC, "private"),
    ("https://100.64.0.1/hook", PUBLIC, "carrier-grade NAT"),
    ("https://0.0.0.0/hook", PUBLIC, "unspecified"),
    ("https://224.0.0.1/hook", PUBLIC, "multicast"),
    ("https://240.0.0.1/hook", PUBLIC, "reserved"),
    ("https://192.0.2.1/hook", PUBLIC, "only to public internet addresses"),  # documentation
    ("https://intranet.lerdo.gob.mx/hook", resolving("10.1.2.3"), "resolves to 10.1.2.3"),
    ("https://avisos.example.com/hook", resolving("203.0.114.10", "192.168.0.7"), "192.168.0.7"),
    ("https://nowhere.example/hook", unresolvable, "does not resolve"),
    ("https://avisos.example.com/" + "a" * 2000, PUBLIC, "longer than 2000"),
    ("https:///hook", PUBLIC, "no host"),
    ("https://avisos.example.com/hook#top", PUBLIC, "fragment"),
    ("https://avisos.example.com:0/hook", PUBLIC, "port 0"),
    ("https://avisos.example.com:99999/hook", PUBLIC, "cannot be read"),
    ("https://avisos.example.com\\@127.0.0.1/hook", PUBLIC, "backslash"),
    ("https://avisos.example.com/ho ok", PUBLIC, "spaces"),
    ("https://avis_os-.example.com/hook", PUBLIC, "not a host name"),
    ("javascript:alert(1)", PUBLIC, "https://"),
    ("file:///etc/passwd", PUBLIC, "https://"),
    ("//avisos.example.com/hook", PUBLIC, "https://"),
]


@pytest.mark.parametrize("url,resolve,reason", HOSTILE, ids=[url[:60] for url, *_ in HOSTILE])
def test_a_url_that_would_reach_inside_or_is_not_plainly_https_is_refused(url, resolve, reason):
    with pytest.raises(RefusedUrl, match=reason.replace(".", r"\.")):
        check_url(url, allow_http=False, allow_private=False, resolve=resolve)


def test_a_host_that_does_not_resolve_is_refused_as_such_so_a_sender_can_retry_it():
    with pytest.raises(UnresolvedHost):
        check_url("https://nowhere.example/", allow_http=False, allow_private=False,
                  resolve=unresolvable)
    assert issubclass(UnresolvedHost, RefusedUrl) and issubclass(RefusedUrl, ValueError)


def test_localhost_resolved_for_real_is_refused():
    with pytest.raises(RefusedUrl, match="loopback"):
        check_url("https://localhost:8443/hook", allow_http=False, allow_private=False)


@pytest.mark.parametrize("url,normalised", [
    ("https://Avisos.Example.COM/hooks/expediente?token=abc",
     "https://avisos.example.com/hooks/expediente?token=abc"),
    ("HTTPS://avisos.example.com", "https://avisos.example.com/"),
    ("https://avisos.example.com:443/in", "https://avisos.example.com/in"),
    ("https://avisos.example.com:8443/in", "https://avisos.example.com:8443/in"),
    ("https://avisos.example.com./in", "https://avisos.example.com/in"),
    ("https://señales.example.mx/in", "https://xn--seales-xwa.example.mx/in"),
    ("https://203.0.114.10/in", "https://203.0.114.10/in"),
    ("https://[2001:4860:4860::8888]:8443/in", "https://[2001:4860:4860::8888]:8443/in"),
])
def test_a_public_https_endpoint_is_accepted_and_normalised(url, normalised):
    assert check_url(url, allow_http=False, allow_private=False, resolve=PUBLIC) == normalised


@pytest.mark.parametrize("url,resolve", [
    ("https://127.0.0.1:8099/hook", PUBLIC),
    ("https://[::1]/hook", PUBLIC),
    ("https://localhost/hook", resolving("127.0.0.1")),
    ("https://10.20.30.40/hook", PUBLIC),
    ("https://webhooks.lerdo.internal/hook", resolving("192.168.1.20")),
])
def test_private_and_loopback_endpoints_are_allowed_when_the_settings_allow_them(url, resolve):
    with pytest.raises(RefusedUrl):
        check_url(url, allow_http=False, allow_private=False, resolve=resolve)
    assert check_url(url, allow_http=False, allow_private=True, resolve=resolve).startswith(
        url.split("/hook")[0])


def test_plain_http_is_allowed_only_when_the_settings_allow_it():
    url = "http://avisos.example.com:8080/hook"
    with pytest.raises(RefusedUrl, match="https://"):
        check_url(url, allow_http=False, allow_private=False, resolve=PUBLIC)
    assert check_url(url, allow_http=True, allow_private=False, resolve=PUBLIC) == url
    assert check_url("http://avisos.example.com:80/hook", allow_http=True, allow_private=False,
                     resolve=PUBLIC) == "http://avisos.example.com/hook"


@pytest.mark.parametrize("url", ["https://user:pw@127.0.0.1/", "https://127.0.0.1/#x",
                                 "file:///etc/passwd", "https://no host/"])
def test_what_the_settings_allow_never_includes_userinfo_fragments_or_other_schemes(url):
    with pytest.raises(RefusedUrl):
        check_url(url, allow_http=True, allow_private=True, resolve=PUBLIC)


def test_at_send_time_a_name_that_now_resolves_inside_is_rejected_and_one_that_does_not_retried():
    url = "https://avisos.example.com/hook"
    assert check_url(url, allow_http=False, allow_private=False, resolve=PUBLIC) == url
    rebound = WebhookSender(2, allow_http=False, allow_private=False,
                            resolve=resolving("169.254.169.254"))
    outcome = rebound.post(url, [new_secret()], MESSAGE_ID, BODY)
    assert outcome.status == "rejected" and "169.254.169.254" in outcome.detail
    gone = WebhookSender(2, allow_http=False, allow_private=False, resolve=unresolvable)
    outcome = gone.post(url, [new_secret()], MESSAGE_ID, BODY)
    assert outcome.status == "retry" and "does not resolve" in outcome.detail


def test_the_wait_doubles_from_the_base_up_to_the_cap_with_full_jitter():
    assert [backoff(n, rng=lambda: 1.0) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff(11, rng=lambda: 1.0) == 3600  # 5 * 2**10 = 5120, capped
    assert backoff(10_000, rng=lambda: 1.0) == 3600
    assert backoff(3, base=1, cap=3, rng=lambda: 1.0) == 3
    assert backoff(4, rng=lambda: 0.0) == 0
    assert backoff(3, rng=lambda: 0.5) == 10
    for attempt in range(1, 30):
        assert 0 <= backoff(attempt) <= min(3600, 5 * 2 ** (attempt - 1))


def test_the_jitter_spreads_the_waits_of_many_deliveries():
    waits = {round(backoff(6), 3) for _ in range(50)}
    assert len(waits) > 10 and max(waits) <= 160


def test_attempts_count_from_one():
    with pytest.raises(ValueError, match="from 1"):
        backoff(0)
