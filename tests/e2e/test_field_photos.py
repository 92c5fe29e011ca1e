"""A crew documents its work from the street through crews' photo door, against the real tracking:
a photo before and after the repair, kept by crews (re-encoded, without the phone's metadata) and
shown on the citizen's status page with its caption and stage; the same step sent twice recorded
once, with one file; another crew's photo refused and not kept; what is not a photo or not a
valid form refused before anything is written. And a crew on its way says when it expects to
arrive: the citizen reads it, and a time before the crew set out is refused."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from PIL import Image

from tests.e2e.test_field_steps import CITY, CREW, assigned, at, auth, step, timeline
from tests.stack import Stack

pytestmark = pytest.mark.e2e

MAX_BYTES = 256 * 1024  # PHOTO_MAX_BYTES here: an oversized photo stays small to send


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("stack"), {"PHOTO_MAX_BYTES": str(MAX_BYTES)}).start()
    yield running
    running.stop()


def phone_photo(colour: str = "#7a1f3d") -> bytes:
    """A phone's JPEG, with the maker and the position the camera wrote into it."""
    exif = Image.Exif()
    exif[0x010F] = "SecretPhone"
    exif.get_ifd(0x8825).update({1: "N", 2: (20.0, 35.0, 35.16), 3: "W", 4: (100.0, 23.0, 31.2)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", exif=exif)
    return out.getvalue()


def photo(stack, folio: str, headers=CREW, data: bytes | None = None,
          **fields) -> requests.Response:
    form = {"caption": "Bache antes de rellenar", "stage": "before",
            "step_id": str(uuid.uuid4()), "occurred_at": at(30), **fields}
    form = {key: value for key, value in form.items() if value is not None}
    files = {"photo": ("IMG_0001.jpg", phone_photo() if data is None else data, "image/jpeg")}
    return requests.post(f"{stack.crews.url}/field/reports/{folio}/photos", data=form,
                         files=files, headers=headers, timeout=20)


def kept(stack) -> set[str]:
    directory = stack.workdir / "crews-photos"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def on_site(stack) -> str:
    folio = assigned(stack)
    for name, seconds in (("dispatched", 5), ("arrived", 20)):
        answer = step(stack, folio, name, occurred_at=at(seconds))
        assert answer.status_code == 200, answer.text
    return folio


def test_the_citizen_sees_the_crews_photos_before_and_after(stack):
    folio = on_site(stack)
    before = photo(stack, folio, occurred_at=at(25))
    assert before.status_code == 200, before.text
    assert before.json()["origin"] == "field"
    after = photo(stack, folio, data=phone_photo("#1e3cc8"), caption="Bache rellenado",
                  stage="after", occurred_at=at(50))
    assert after.status_code == 200, after.text
    urls = [before.json()["url"], after.json()["url"]]
    assert all(url.startswith(f"{stack.crews.url}/media/") for url in urls)

    public = requests.get(f"{stack.tracking.url}/reports/{folio}", timeout=10).json()
    shown = [e for e in public["timeline"] if e["type"] == "photo_added"]
    assert [(e["url"], e["caption"], e["stage"]) for e in shown] == [
        (urls[0], "Bache antes de rellenar", "before"), (urls[1], "Bache rellenado", "after")]
    assert [(p["url"], p["stage"]) for p in public["photos"]] == [
        (urls[0], "before"), (urls[1], "after")]
    page = requests.get(f"{stack.tracking.url}/seguimiento/{folio}", timeout=10)
    assert f'<img src="{urls[0]}" alt="Bache antes de rellenar"' in page.text
    assert "Bache rellenado" in page.text
    assert stack.crews.url in page.headers["Content-Security-Policy"]  # the page may show them
    for url in urls:
        served = requests.get(url, timeout=10)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert b"SecretPhone" not in served.content  # re-encoded: no maker, no position
        assert Image.open(io.BytesIO(served.content)).size == (64, 48)


def test_the_same_photo_step_twice_is_recorded_once_with_one_file(stack):
    folio = on_site(stack)
    files_before = kept(stack)
    first = photo(stack, folio, step_id="foto-repetida-1")
    again = photo(stack, folio, step_id="foto-repetida-1")
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()  # the same version: recorded once
    assert len(kept(stack) - files_before) == 1
    assert [e["type"] for e in timeline(stack, folio)].count("photo_added") == 1


def test_another_crews_photo_is_refused_and_not_kept(stack):
    folio = on_site(stack)
    files_before, entries = kept(stack), len(timeline(stack, folio))
    other = photo(stack, folio, headers=auth("crew", crew_id="C-02"))
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_assigned_crew"
    closed = requests.post(f"{stack.tracking.url}/reports/{folio}/close_report", timeout=10,
                           json={"resolution": "fixed"}, headers=auth("supervisor"))
    assert closed.status_code == 200, closed.text
    late = photo(stack, folio)
    assert late.status_code == 409 and late.json()["error"]["code"] == "report_closed"
    assert kept(stack) == files_before
    assert len(timeline(stack, folio)) == entries + 1  # the closing only


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.mark.parametrize(("data", "fields", "status", "field"), [
    (HTML, {}, 400, "photo"),
    (b"\xff\xd8\xff" + b"\x00" * (MAX_BYTES + 1), {}, 413, "photo"),
    (None, {"stage": "despues"}, 400, "stage"),
    (None, {"stage": "report"}, 400, "stage"),
    (None, {"caption": None}, 400, "caption"),
    (None, {"caption": "Bache\x00 antes"}, 400, "caption"),
    (None, {"caption": "Bache " * 2000}, 400, "caption"),
    (None, {"step_id": "foto\x00-0001"}, 400, "step_id"),
    (None, {"occurred_at": "2026-12-05T10:42:00"}, 400, "occurred_at"),
], ids=["not an image", "oversized", "bad stage", "the citizen's stage", "no caption",
        "NUL in the caption", "a caption too long", "NUL in the key", "no time zone"])
def test_what_is_not_a_photo_step_is_refused_and_writes_nothing(stack, data, fields, status,
                                                                field):
    folio = on_site(stack)
    files_before, entries = kept(stack), len(timeline(stack, folio))
    answer = photo(stack, folio, data=data, **fields)
    assert answer.status_code == status, answer.text
    assert field in answer.json()["errors"], answer.text
    assert kept(stack) == files_before and len(timeline(stack, folio)) == entries


def test_the_crew_on_its_way_says_when_it_expects_to_arrive(stack):
    folio = assigned(stack)
    assert step(stack, folio, "dispatched", occurred_at=at(5)).status_code == 200
    eta = (datetime.fromisoformat(at(10)) + timedelta(minutes=25)).astimezone(CITY)
    early = step(stack, folio, "en_route", occurred_at=at(10), eta=at(0))
    assert early.status_code == 400 and "eta" in early.json()["errors"], early.text
    far = step(stack, folio, "en_route", occurred_at=at(10),
               eta=(eta + timedelta(days=2)).isoformat())
    assert far.status_code == 400 and "eta" in far.json()["errors"], far.text
    wrong_step = step(stack, folio, "arrived", occurred_at=at(10), eta=eta.isoformat())
    assert wrong_step.status_code == 400 and "eta" in wrong_step.json()["errors"]
    assert len(timeline(stack, folio)) == 3  # opened, assigned, dispatched: nothing more

    on_its_way = step(stack, folio, "en_route", occurred_at=at(10), eta=eta.isoformat())
    assert on_its_way.status_code == 200, on_its_way.text
    [shown] = [e for e in timeline(stack, folio) if e["type"] == "crew_en_route"]
    assert datetime.fromisoformat(shown["eta"]) == eta
    page = requests.get(f"{stack.tracking.url}/seguimiento/{folio}", timeout=10).text
    assert f"Llegada estimada: <time datetime=\"{shown['eta']}\">" in page
    events = requests.get(f"{stack.tracking.url}/reports/{folio}/events", timeout=10,
                          headers=auth("supervisor")).json()["events"]
    [published] = [e for e in events if e["type"].endswith(".crew_en_route")]
    assert datetime.fromisoformat(published["data"]["eta"]) == eta
