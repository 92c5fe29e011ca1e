"""Who may upload a photo to intake and how many: a citizen needs a signed, short-lived upload
ticket that takes a few photos, every client has an hourly quota, staff have theirs; and uploads
no report ever used are swept away."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.intake.photos import prune_orphans
from services.intake.store import IntakeStore
from services.intake.uploads import (
    DEVELOPMENT_SECRET,
    Tickets,
    UploadPolicy,
    UploadRefused,
    client_of,
)
from shared.chassis.photos import LocalPhotoStore, S3PhotoStore
from shared.chassis.sqlstore import SqliteStore

NOW = datetime(2026, 3, 1, 17, 20, tzinfo=UTC)


@pytest.fixture
def bookkeeping():
    return IntakeStore(SqliteStore(":memory:"))


def policy(**limits) -> UploadPolicy:
    return UploadPolicy.from_config({"UPLOAD_TICKET_SECRET": "s3cr3t-de-prueba", **limits})


def request_from(address: str, forwarded: str | None = None) -> Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return Request(EnvironBuilder(path="/api/v1/photos", method="POST", headers=headers,
                                  environ_base={"REMOTE_ADDR": address}).get_environ())


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(out, "JPEG")
    return out.getvalue()


# ---- tickets ------------------------------------------------------------------------------


def test_a_ticket_signed_by_intake_is_accepted_until_it_expires():
    tickets = Tickets("s3cr3t", timedelta(minutes=30))
    token, issued = tickets.issue(now=NOW)
    assert issued.expires_at == NOW + timedelta(minutes=30)
    assert tickets.verify(token, now=NOW + timedelta(minutes=29)) == issued
    with pytest.raises(UploadRefused) as expired:
        tickets.verify(token, now=NOW + timedelta(minutes=30))
    assert expired.value.status == 401 and "caducó" in expired.value.spanish


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b", "eyJpIjoieCJ9.", "....."])
def test_no_ticket_or_a_made_up_one_is_a_401(token):
    with pytest.raises(UploadRefused) as refused:
        Tickets("s3cr3t", timedelta(hours=1)).verify(token)
    assert refused.value.status == 401


def test_a_ticket_signed_with_another_secret_or_altered_is_refused():
    token, _ = Tickets("otro secreto", timedelta(hours=1)).issue()
    ours = Tickets("s3cr3t", timedelta(hours=1))
    with pytest.raises(UploadRefused):
        ours.verify(token)
    mine, _ = ours.issue()
    payload, _, signature = mine.partition(".")
    longer, _ = ours.issue(client="chatbot:whatsapp:+5214421234567")
    with pytest.raises(UploadRefused):  # someone else's payload under my signature
        ours.verify(f"{longer.partition('.')[0]}.{signature}")


def test_the_secret_is_required_and_development_has_a_default():
    with pytest.raises(ValueError, match="UPLOAD_TICKET_SECRET"):
        UploadPolicy.from_config({"UPLOAD_TICKET_SECRET": ""})
    assert UploadPolicy.from_config({}).tickets.key == Tickets(DEVELOPMENT_SECRET,
                                                               timedelta(hours=1)).key
    with pytest.raises(ValueError, match="PHOTO_UPLOADS_PER_HOUR"):
        policy(PHOTO_UPLOADS_PER_HOUR=0)


def test_a_ticket_takes_a_bounded_number_of_photos(bookkeeping):
    rules = policy(UPLOAD_TICKET_PHOTOS=2)
    token = rules.issue(bookkeeping, address="203.0.113.7")["ticket"]
    rules.admit_citizen(bookkeeping, token, "203.0.113.7")
    rules.admit_citizen(bookkeeping, token, "203.0.113.7")
    with pytest.raises(UploadRefused) as used_up:
        rules.admit_citizen(bookkeeping, token, "203.0.113.7")
    assert used_up.value.status == 403
    other = rules.issue(bookkeeping, address="203.0.113.7")["ticket"]
    rules.admit_citizen(bookkeeping, other, "203.0.113.7")  # a new ticket goes on


# ---- quotas -------------------------------------------------------------------------------


def test_each_address_has_an_hourly_quota_of_photos_and_says_when_to_come_back(bookkeeping):
    rules = policy(PHOTO_UPLOADS_PER_HOUR=3, UPLOAD_TICKET_PHOTOS=10)
    token = rules.issue(bookkeeping, address="198.51.100.4")["ticket"]
    for _ in range(3):
        rules.admit_citizen(bookkeeping, token, "198.51.100.4")
    with pytest.raises(UploadRefused) as refused:
        rules.admit_citizen(bookkeeping, token, "198.51.100.4")
    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 3600
    assert "3 fotos por hora" in refused.value.spanish
    rules.admit_citizen(bookkeeping, token, "198.51.100.5")  # a neighbour's quota is their own


def test_tickets_are_rate_limited_per_address(bookkeeping):
    rules = policy(UPLOAD_TICKETS_PER_HOUR=2)
    rules.issue(bookkeeping, address="198.51.100.9")
    rules.issue(bookkeeping, address="198.51.100.9")
    with pytest.raises(UploadRefused) as refused:
        rules.issue(bookkeeping, address="198.51.100.9")
    assert refused.value.status == 429 and refused.value.retry_after
    assert rules.issue(bookkeeping, address="198.51.100.10")["photos"] == 5


def test_a_chatbot_senders_photos_count_against_the_sender_not_the_adapters_address(
        bookkeeping):
    rules = policy(PHOTO_UPLOADS_PER_HOUR=1)
    adapter = "10.0.0.5"
    ana = rules.issue(bookkeeping, sender="whatsapp:+5214421234567")["ticket"]
    luis = rules.issue(bookkeeping, sender="whatsapp:+5214427654321")["ticket"]
    rules.admit_citizen(bookkeeping, ana, adapter)
    rules.admit_citizen(bookkeeping, luis, adapter)
    with pytest.raises(UploadRefused):
        rules.admit_citizen(bookkeeping, ana, adapter)


def test_staff_have_a_quota_of_their_own(bookkeeping):
    rules = policy(PHOTO_UPLOADS_PER_HOUR=1, PHOTO_STAFF_UPLOADS_PER_HOUR=2)
    rules.admit_staff(bookkeeping, "cuadrilla-07")
    rules.admit_staff(bookkeeping, "cuadrilla-07")
    with pytest.raises(UploadRefused) as refused:
        rules.admit_staff(bookkeeping, "cuadrilla-07")
    assert refused.value.status == 429


def test_past_windows_and_expired_tickets_are_forgotten(bookkeeping):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = now - timedelta(hours=5)
    assert bookkeeping.take_allowance("photos:192.0.2.1", old, 1)
    assert bookkeeping.use_ticket("t-1", old, 5)
    assert bookkeeping.take_allowance("photos:192.0.2.1", now, 1)
    assert bookkeeping.forget_uploads_before(now - timedelta(hours=2)) == 2
    assert bookkeeping.take_allowance("photos:192.0.2.1", old, 1)  # that window starts afresh
    assert not bookkeeping.take_allowance("photos:192.0.2.1", now, 1)


# ---- the client's address -----------------------------------------------------------------


def test_the_address_is_the_connections_unless_a_trusted_proxy_says_otherwise():
    assert client_of(request_from("203.0.113.7", "198.51.100.1"), 0) == "203.0.113.7"
    # Behind the ingress: the last address it appended is the client it saw.
    forged_and_real = request_from("10.1.2.3", "6.6.6.6, 198.51.100.1")
    assert client_of(forged_and_real, 1) == "198.51.100.1"
    assert client_of(forged_and_real, 2) == "6.6.6.6"
    assert client_of(request_from("10.1.2.3"), 1) == "10.1.2.3"  # no header: the connection


def test_an_ipv6_client_counts_by_its_64():
    one = client_of(request_from("2001:db8:1:2:aaaa::1"), 0)
    other = client_of(request_from("2001:db8:1:2:bbbb::9"), 0)
    assert one == other == "2001:db8:1:2::/64"
    assert client_of(request_from("::ffff:203.0.113.7"), 0) == "203.0.113.7"


# ---- orphans: uploads that no report ever referenced ---------------------------------------


def uploaded(store, bookkeeping, data, hours_ago: float) -> str:
    url = store.store(data)
    name = url.rsplit("/", 1)[1]
    bookkeeping.photo_uploaded(name)
    with bookkeeping.sql.transaction() as tx:
        tx.execute("UPDATE intake_photos SET uploaded_at = %s WHERE name = %s",
                   ((datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(), name))
    return url


def test_an_old_upload_no_report_references_is_removed_and_the_rest_stay(bookkeeping,
                                                                        tmp_path):
    store = LocalPhotoStore(tmp_path / "photos", "http://intake.test")
    used = uploaded(store, bookkeeping, jpeg(1), hours_ago=72)
    orphan = uploaded(store, bookkeeping, jpeg(2), hours_ago=72)
    fresh = uploaded(store, bookkeeping, jpeg(3), hours_ago=1)  # its report may still be coming
    bookkeeping.photos_used([used, "https://elsewhere.test/x.jpg"], "QRO-2026-000007")

    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 1

    kept = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert kept == sorted(u.rsplit("/", 1)[1] for u in (used, fresh))
    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 0
    assert orphan.rsplit("/", 1)[1] not in kept


def test_the_s3_store_removes_orphans_from_the_bucket(bookkeeping):
    class FakeS3:
        objects: dict[str, bytes] = {}

        def put_object(self, **kwargs):
            self.objects[kwargs["Key"]] = kwargs["Body"]

        def delete_object(self, **kwargs):
            self.objects.pop(kwargs["Key"], None)

    s3 = FakeS3()
    store = S3PhotoStore("fotos", public_url="https://cdn.test/fotos", client=s3)
    orphan = uploaded(store, bookkeeping, jpeg(4), hours_ago=100)
    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 1
    assert orphan.rsplit("/", 1)[1] not in s3.objects
