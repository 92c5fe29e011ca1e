"""Crews' photo door on its real entrypoint and photo store (a directory), with tracking played by
a fake that records what it was sent: a crew's photo is kept re-encoded and forwarded as an
`add_photo` step; the same step again keeps no second copy; what tracking refuses is deleted;
what is not a valid form or not a photo is refused before anything is written.
(tests/e2e/test_field_photos.py runs the same story against the real tracking.)"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from services.crews.dependencies import CrewsRuntime
from services.crews.fieldphotos import step_photo_name
from services.crews.service import CrewsService
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.chassis.photos import Photos, S3PhotoStore
from shared.contracts.errors import WireError
from tests.support import ROOT
from tests.workers import Host, http_answer

CITY = ZoneInfo("America/Mexico_City")
FOLIO = "QRO-2026-000123"
MAX_BYTES = 64 * 1024


class FakeTracking:
    """Tracking as crews' RPC client sees it: the report's state, or the refusal it is told to
    give; each command it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.refusal: WireError | None = None
        self.recorded: dict[str, str] = {}  # step_id -> url: a key is recorded once

    def call(self, method: str, command: str, folio: str, payload: dict[str, Any],
             on_behalf_of: str | None = None) -> dict[str, Any]:
        assert method == "run_command" and on_behalf_of.startswith("Bearer ")
        self.sent.append((command, folio, payload))
        if self.refusal is not None:
            raise self.refusal
        self.recorded.setdefault(payload["step_id"], payload["url"])
        return {"folio": folio, "version": 5 + len(self.recorded), "step": "on_site",
                "status": "open", "crew_id": "C-01", "resolution": None,
                "duplicate_of": None, "department": "obras_publicas"}


@pytest.fixture
def host(tmp_path):
    config = load_config(ROOT / "services/crews/config.yaml",
                         SQLITE_DBNAME=str(tmp_path / "crews.sqlite"), PROJECTION_COALESCE=0,
                         PHOTO_DIR=str(tmp_path / "photos"), PUBLIC_URL="http://crews.test",
                         PHOTO_MAX_BYTES=MAX_BYTES)
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), auth=Auth(),
                                              photos=Photos()).start()
    host.given["tracking"] = FakeTracking()
    yield host
    host.stop()


def kept(host) -> list[str]:
    return sorted(p.name for p in (host.providers["photos"].store.directory).iterdir())


def phone_photo(colour: str = "#7a1f3d") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretPhone"
    exif.get_ifd(0x8825).update({1: "N", 2: (20.0, 35.0, 35.16)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", exif=exif)
    return out.getvalue()


def form(**changes: Any) -> dict[str, Any]:
    fields = {"caption": "Bache antes de rellenar", "stage": "before",
              "step_id": "foto-00000001",
              "occurred_at": (datetime.now(CITY) - timedelta(minutes=1)).isoformat(),
              "photo": phone_photo()}
    fields.update(changes)
    return {k: (io.BytesIO(v), "IMG_0001.jpg") if isinstance(v, bytes) else v
            for k, v in fields.items() if v is not None}


def send(host, role: str | None = "crew", **changes: Any):
    token = mint_token(f"pedro-{role}", (role,), config=host.config,
                       crew_id="C-01") if role else None
    return http_answer(host, "POST", f"/field/reports/{FOLIO}/photos", token=token,
                       data=form(**changes), content_type="multipart/form-data")


def test_a_crews_photo_is_kept_clean_and_added_to_the_report_through_tracking(host):
    answer = send(host)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["origin"] == "field" and body["url"].startswith("http://crews.test/media/")
    [(command, folio, payload)] = host.given["tracking"].sent
    assert (command, folio) == ("add_photo", FOLIO)
    assert {k: payload[k] for k in ("url", "caption", "stage", "step_id")} == {
        "url": body["url"], "caption": "Bache antes de rellenar", "stage": "before",
        "step_id": "foto-00000001"}
    [name] = kept(host)
    assert body["url"].endswith(name) and name == step_photo_name(FOLIO, "foto-00000001", "jpg")
    served = http_answer(host, "GET", f"/media/{name}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert b"SecretPhone" not in served.get_data()  # re-encoded: no EXIF, no position
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert http_answer(host, "GET", "/media/crews.sqlite").status_code == 404
    assert http_answer(host, "GET", f"/media/{'f' * 32}.jpg").status_code == 404


def as_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "#1e3cc8").save(out, "PNG")
    return out.getvalue()


def test_the_same_step_sent_again_keeps_one_copy_and_answers_the_same(host):
    first = send(host).get_json()
    again = send(host, photo=phone_photo("#1e3cc8")).get_json()  # the phone re-encoded it
    other_kind = send(host, photo=as_png()).get_json()  # or sent it as another kind
    assert again == first and other_kind == first and len(kept(host)) == 1
    assert host.given["tracking"].recorded == {"foto-00000001": first["url"]}


@pytest.mark.parametrize("refusal", [
    WireError("not_assigned_crew", "crew C-01 is not assigned"),
    WireError("invalid_transition", "cannot add a photo while the report is closed"),
    WireError("not_found", "no report has folio QRO-2026-000123")])
def test_a_photo_tracking_refuses_is_not_left_behind(host, refusal):
    host.given["tracking"].refusal = refusal
    answer = send(host)
    assert answer.status_code == refusal.status
    assert answer.get_json()["error"]["code"] == refusal.code
    assert kept(host) == []


def test_a_photo_kept_by_an_earlier_try_stays_when_a_later_try_is_refused(host):
    first = send(host)
    assert first.status_code == 200
    host.given["tracking"].refusal = WireError("not_assigned_crew", "reassigned meanwhile")
    assert send(host).status_code == 403
    assert kept(host) == [first.get_json()["url"].rsplit("/", 1)[1]]  # the report shows it


def test_without_an_answer_from_tracking_the_photo_stays_for_the_phones_retry(host):
    host.given["tracking"].refusal = WireError("unavailable", "tracking did not answer")
    assert send(host).status_code == 503
    assert len(kept(host)) == 1
    host.given["tracking"].refusal = None
    assert send(host).status_code == 200 and len(kept(host)) == 1


@pytest.mark.parametrize(("changes", "status", "field"), [
    ({"photo": b"<html><script>alert(1)</script></html>"}, 400, "photo"),
    ({"photo": b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32}, 400, "photo"),
    ({"photo": b"\xff\xd8\xff" + b"\x00" * 100}, 400, "photo"),  # says JPEG, is not one
    ({"photo": b"\xff\xd8\xff" + b"\x00" * MAX_BYTES}, 413, "photo"),
    ({"photo": None}, 400, "photo"),
    ({"stage": "report"}, 400, "stage"),  # the citizen's stage, not the crew's
    ({"stage": "despues"}, 400, "stage"),
    ({"caption": None}, 400, "caption"),
    ({"caption": "   "}, 400, "caption"),
    ({"caption": "Bache\x00"}, 400, "caption"),
    ({"caption": "Bache " * 100}, 400, "caption"),
    ({"caption": "Bache\nantes"}, 400, "caption"),
    ({"step_id": "corto"}, 400, "step_id"),
    ({"step_id": "foto-\x0000001"}, 400, "step_id"),
    ({"occurred_at": "2026-12-05T10:42:00"}, 400, "occurred_at"),
    ({"occurred_at": "1990-01-01T10:42:00+00:00"}, 400, "occurred_at"),
    ({"occurred_at": None}, 400, "occurred_at"),
    ({"eta": "2026-12-05T11:00:00-06:00"}, 400, "eta"),  # a photo is not en route
])
def test_what_is_not_a_photo_step_is_refused_before_anything_is_written(host, changes, status,
                                                                        field):
    answer = send(host, **changes)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert field in answer.get_json()["errors"]
    assert kept(host) == [] and host.given["tracking"].sent == []


def test_the_photo_door_takes_a_multipart_form_only(host):
    token = mint_token("pedro", ("crew",), config=host.config, crew_id="C-01")
    answer = http_answer(host, "POST", f"/field/reports/{FOLIO}/photos", token=token,
                         data=phone_photo(), content_type="image/jpeg")
    assert answer.status_code == 415 and "photo" in answer.get_json()["errors"]
    assert kept(host) == [] and host.given["tracking"].sent == []


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("operator", 403), ("auditor", 403)])
def test_only_crews_and_supervisors_send_field_photos(host, role, status):
    assert send(host, role=role).status_code == status
    assert kept(host) == [] and host.given["tracking"].sent == []


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's)
        if Key not in self.objects:
            error = Exception("Not Found")
            error.response = {"Error": {"Code": "404"}}  # as botocore's ClientError carries it
            raise error
        return {}

    def put_object(self, **kwargs: Any) -> None:
        self.objects[kwargs["Key"]] = kwargs


def test_the_object_store_says_whether_a_photo_is_kept():
    store = S3PhotoStore("fotos", public_url="https://cdn.test/fotos", client=FakeS3())
    name = step_photo_name(FOLIO, "foto-00000001", "jpg")
    assert not store.exists(name)
    store.put(name, b"...", "image/jpeg")
    assert store.exists(name)
