"""The photo doors against a running intake: a citizen's app uploads with an upload ticket, the
portal's form carries one, staff upload with their token; hourly quotas per client (counted in
intake's database); what is served is only the clean re-encoded photo, never anything runnable.

The stack trusts one proxy hop, so each test speaks from an address of its own
(X-Forwarded-For) and the quotas of one test do not spend another's."""

from __future__ import annotations

import io
import itertools
import re

import pytest
import requests
from PIL import Image

from tests.e2e.test_portal import GIF, post_form, pothole_form, same_picture, tiny_png
from tests.stack import Stack
from tests.support import bearer

pytestmark = pytest.mark.e2e

LIMITS = {"PHOTO_UPLOADS_PER_HOUR": "4", "UPLOAD_TICKETS_PER_HOUR": "3",
          "UPLOAD_TICKET_PHOTOS": "2", "PHOTO_STAFF_UPLOADS_PER_HOUR": "50",
          "TRUSTED_PROXY_HOPS": "1"}
ADDRESSES = (f"203.0.113.{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("stack"), LIMITS).start()
    yield running
    running.stop()


@pytest.fixture
def client():
    """A phone at an address of its own, behind the (trusted) ingress."""
    return {"X-Forwarded-For": next(ADDRESSES)}


def ticket_for(stack, client) -> str:
    answer = requests.post(f"{stack.intake.url}/api/v1/upload-tickets", headers=client,
                           timeout=10)
    assert answer.status_code == 201, answer.text
    assert answer.json()["photos"] == 2 and answer.json()["expires_at"]
    return answer.json()["ticket"]


def upload(stack, data, headers, content_type="image/jpeg"):
    return requests.post(f"{stack.intake.url}/api/v1/photos", data=data, timeout=30,
                         headers={"Content-Type": content_type, **headers})


def phone_photo() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretPhone"
    exif.get_ifd(0x8825).update({1: "N", 2: (20.0, 35.0, 35.16), 3: "W", 4: (100.0, 23.0, 31.2)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "#7a1f3d").save(out, "JPEG", exif=exif)
    return out.getvalue()


def stored_photos(stack) -> set[str]:
    directory = stack.workdir / "photos"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def test_the_app_uploads_with_a_ticket_and_the_position_is_not_published(stack, client):
    ticket = ticket_for(stack, client)
    raw = upload(stack, phone_photo() + b"<html><script>alert(1)</script>",
                 {**client, "X-Upload-Ticket": ticket})
    assert raw.status_code == 201, raw.text
    url = raw.json()["url"]
    assert re.match(re.escape(stack.intake.url) + r"/media/[0-9a-f]{32}\.jpg$", url)
    served = requests.get(url, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.headers["Content-Disposition"].startswith("inline; filename=")
    assert b"SecretPhone" not in served.content and b"<script" not in served.content
    assert dict(Image.open(io.BytesIO(served.content)).getexif()) == {}

    png = tiny_png(rgb=(0, 128, 0))
    multipart = requests.post(f"{stack.intake.url}/api/v1/photos", timeout=10,
                              headers={**client, "X-Upload-Ticket": ticket},
                              files={"photo": ("../../etc/passwd.png", png, "image/png")})
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["url"].endswith(".png") and "passwd" not in multipart.json()["url"]
    assert same_picture(requests.get(multipart.json()["url"], timeout=10).content, png)


@pytest.mark.parametrize("ticket", [None, "not-a-ticket", "eyJpIjoiYSJ9.Zm9yZ2Vk"])
def test_without_a_valid_ticket_a_photo_is_a_401_and_nothing_is_kept(stack, client, ticket):
    before = stored_photos(stack)
    headers = {**client, **({"X-Upload-Ticket": ticket} if ticket else {})}
    refused = upload(stack, phone_photo(), headers)
    assert refused.status_code == 401, refused.text
    assert "photo" in refused.json()["errors"]
    assert stored_photos(stack) == before


def test_a_ticket_takes_its_photos_and_no_more(stack, client):
    ticket = {**client, "X-Upload-Ticket": ticket_for(stack, client)}
    assert [upload(stack, phone_photo(), ticket).status_code for _ in range(3)] == [201, 201, 403]


def test_past_the_hourly_quota_a_client_is_told_when_to_come_back(stack, client):
    first, second, third = ({**client, "X-Upload-Ticket": ticket_for(stack, client)}
                            for _ in range(3))
    sent = [upload(stack, phone_photo(), ticket).status_code
            for ticket in (first, first, second, second)]
    assert sent == [201] * 4
    too_many = upload(stack, phone_photo(), third)
    assert too_many.status_code == 429, too_many.text
    assert 1 <= int(too_many.headers["Retry-After"]) <= 3600
    assert "por hora" in too_many.json()["errors"]["photo"][0]
    neighbour = {"X-Forwarded-For": next(ADDRESSES)}
    assert upload(stack, phone_photo(), {**neighbour, "X-Upload-Ticket": ticket_for(
        stack, neighbour)}).status_code == 201


def test_tickets_are_rate_limited_per_address(stack, client):
    for _ in range(3):
        ticket_for(stack, client)
    refused = requests.post(f"{stack.intake.url}/api/v1/upload-tickets", headers=client,
                            timeout=10)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_staff_upload_with_their_token_beyond_the_citizen_quota(stack, client):
    for role in ("operator", "crew", "supervisor", "admin"):
        headers = {**client, "Authorization": bearer(role)["authorization"]}
        assert [upload(stack, phone_photo(), headers).status_code for _ in range(2)] == [201] * 2
    clerk = upload(stack, phone_photo(),
                   {**client, "Authorization": bearer("billing_clerk")["authorization"]})
    assert clerk.status_code == 403
    forged = upload(stack, phone_photo(), {**client, "Authorization": "Bearer not-a-token",
                                           "X-Upload-Ticket": ticket_for(stack, client)})
    assert forged.status_code == 401  # a token that fails is not saved by a ticket


@pytest.mark.parametrize("body, content_type, status, message", [
    (GIF, "image/gif", 400, "no es una foto"),
    (b"\xff\xd8\xff\xe0<html><body>hola</body></html>", "image/jpeg", 400, "no es una foto"),
    (b"", "image/png", 400, "vacía"),
])
def test_the_photo_api_refuses_what_is_not_a_photo(stack, client, body, content_type, status,
                                                   message):
    ticket = {**client, "X-Upload-Ticket": ticket_for(stack, client)}
    response = upload(stack, body, ticket, content_type)
    assert response.status_code == status
    assert message in response.json()["errors"]["photo"][0]


def test_a_png_declaring_ten_billion_pixels_is_refused_and_nothing_is_kept(stack, client):
    from tests.unit.test_photos import png_declaring

    before = stored_photos(stack)
    ticket = {**client, "X-Upload-Ticket": ticket_for(stack, client)}
    bomb = upload(stack, png_declaring(100_000, 100_000), ticket, "image/png")
    assert bomb.status_code == 400 and "megapíxeles" in bomb.json()["errors"]["photo"][0]
    assert stored_photos(stack) == before


def test_the_chatbot_adapter_gets_a_ticket_for_the_sender(stack, client):
    url = f"{stack.intake.url}/chatbot/upload-tickets"
    body = {"sender": "whatsapp:+5214421234567"}
    assert requests.post(url, json=body, headers=client, timeout=10).status_code == 401
    answer = requests.post(url, json=body, timeout=10,
                           headers={**client, "X-Chatbot-Secret": "expediente-chatbot-dev"})
    assert answer.status_code == 201, answer.text
    sent = upload(stack, phone_photo(), {**client, "X-Upload-Ticket": answer.json()["ticket"]})
    assert sent.status_code == 201, sent.text


def test_the_portal_refuses_a_photo_without_the_forms_ticket_and_keeps_nothing(stack):
    before = stored_photos(stack)
    form = pothole_form(upload_ticket="")
    answer = post_form(stack, form, files={"photo": ("bache.png", tiny_png(), "image/png")})
    assert answer.status_code == 400
    assert "permiso para subir la foto" in answer.text
    assert re.search(r'name="upload_ticket" value="[^"]+\.[^"]+"', answer.text)  # a new one
    assert stored_photos(stack) == before


@pytest.mark.parametrize("name", ["nope.jpg", "0" * 32 + ".gif", "..%2F..%2Fetc%2Fpasswd",
                                  "0" * 32 + ".jpg", "0" * 32 + ".html"])
def test_media_serves_only_stored_photos(stack, name):
    assert requests.get(f"{stack.intake.url}/media/{name}", timeout=10).status_code == 404
