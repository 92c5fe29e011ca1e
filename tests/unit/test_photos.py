"""Photos a citizen attaches: only real JPEG, PNG or WebP images within the size limit are kept,
under names of our own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.intake.photos import (
    NAME,
    LocalPhotoStore,
    PhotoRejected,
    S3PhotoStore,
    check,
    kind_of,
    prune_orphans,
    store_from_config,
)
from services.intake.store import IntakeStore
from shared.chassis.sqlstore import SqliteStore

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32
HTML = b"<!doctype html><script>alert(1)</script>"


@pytest.fixture
def store(tmp_path):
    return LocalPhotoStore(tmp_path / "photos", "http://intake.test/", max_bytes=1024)


@pytest.mark.parametrize("data, kind", [(JPEG, "jpg"), (PNG, "png"), (WEBP, "webp")])
def test_a_photo_is_known_by_its_first_bytes(data, kind):
    assert kind_of(data) == kind
    assert check(data) == kind


@pytest.mark.parametrize("data, reason", [
    (GIF, "not_an_image"),
    (HTML, "not_an_image"),                 # an HTML file renamed photo.jpg
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not_an_image"),  # RIFF, but a sound
    (b"\xff\xd8", "not_an_image"),          # too short to be a JPEG
    (b"", "empty"),
])
def test_anything_else_is_refused_whatever_it_claims_to_be(data, reason):
    with pytest.raises(PhotoRejected) as refused:
        check(data)
    assert refused.value.reason == reason
    assert refused.value.spanish and refused.value.english
    message = str(refused.value)
    assert refused.value.spanish in message and refused.value.english in message


def test_a_photo_over_the_limit_is_refused_in_spanish_and_english():
    with pytest.raises(PhotoRejected) as refused:
        check(JPEG + b"\x00" * 2048, max_bytes=1024)
    assert refused.value.reason == "too_large"
    assert "La foto pesa más de" in str(refused.value) and "larger than" in str(refused.value)
    assert check(JPEG[:1024], max_bytes=1024) == "jpg"  # exactly at the limit is fine


def test_the_local_store_keeps_the_bytes_under_a_random_name(store, tmp_path):
    url = store.store(PNG)
    name = url.rsplit("/", 1)[1]
    assert url == f"http://intake.test/media/{name}"
    assert NAME.match(name) and name.endswith(".png")
    assert (tmp_path / "photos" / name).read_bytes() == PNG
    assert store.read(name) == (PNG, "image/png")
    assert store.store(PNG) != url  # the same bytes again: another random name


def test_the_client_filename_plays_no_part_and_nothing_else_is_left_behind(store, tmp_path):
    store.store(JPEG)
    store.store(WEBP)
    files = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert len(files) == 2
    assert all(re.match(r"^[0-9a-f]{32}\.(jpg|webp)$", f) for f in files)


def test_a_refused_photo_writes_nothing(store, tmp_path):
    for data in (GIF, HTML, b"", JPEG + b"\x00" * 2048):
        with pytest.raises(PhotoRejected):
            store.store(data)
    assert list((tmp_path / "photos").iterdir()) == []


def test_a_retried_report_stores_its_photo_once(store, tmp_path):
    first = store.store(JPEG, seed="web:5f0c6a3e-key")
    again = store.store(JPEG, seed="web:5f0c6a3e-key")
    other = store.store(JPEG, seed="web:another-key")
    assert first == again != other
    assert NAME.match(first.rsplit("/", 1)[1])
    assert len(list((tmp_path / "photos").iterdir())) == 2


@pytest.mark.parametrize("name", [
    "../secret.jpg", "x.jpg", "0" * 32 + ".gif", "0" * 32 + ".JPG", "0" * 32 + ".jpg/..",
    ".upload-abc",
])
def test_only_generated_names_are_served(store, name):
    assert store.read(name) is None


def test_a_generated_name_that_is_not_there_is_not_served(store):
    assert store.read("0" * 32 + ".jpg") is None


def test_the_store_knows_its_own_urls(store):
    url = store.store(JPEG)
    assert store.owns(url)
    assert not store.owns("http://elsewhere.test/media/" + url.rsplit("/", 1)[1])
    assert not store.owns("http://intake.test/media/not-ours.jpg")


class FakeS3:
    def __init__(self):
        self.objects: dict[str, dict] = {}

    def put_object(self, **kwargs):
        self.objects[kwargs["Key"]] = kwargs

    def delete_object(self, **kwargs):
        assert kwargs["Bucket"] == "fotos"
        self.objects.pop(kwargs["Key"], None)


def test_the_s3_store_puts_the_object_with_its_content_type():
    s3 = FakeS3()
    store = S3PhotoStore("fotos", public_url="https://cdn.test/fotos/", client=s3)
    url = store.store(WEBP)
    name = url.rsplit("/", 1)[1]
    assert url == f"https://cdn.test/fotos/{name}"
    assert s3.objects[name]["Body"] == WEBP and s3.objects[name]["ContentType"] == "image/webp"
    assert s3.objects[name]["Bucket"] == "fotos"
    with pytest.raises(PhotoRejected):
        store.store(GIF)
    assert list(s3.objects) == [name]


def test_the_s3_store_defaults_to_path_style_urls_on_its_endpoint():
    store = S3PhotoStore("fotos", endpoint_url="http://minio.test:9000", client=FakeS3())
    assert store.url("a.jpg") == "http://minio.test:9000/fotos/a.jpg"


def test_configuration_picks_the_store(tmp_path):
    local = store_from_config({"PHOTO_STORAGE": "local", "PHOTO_DIR": str(tmp_path / "p"),
                               "PUBLIC_URL": "http://x.test", "PHOTO_MAX_BYTES": 2048})
    assert isinstance(local, LocalPhotoStore) and local.max_bytes == 2048
    with pytest.raises(ValueError):
        store_from_config({"PHOTO_STORAGE": "ftp"})


def test_boto3_is_imported_only_by_a_deployment_that_stores_on_s3():
    import subprocess
    import sys

    code = ("import sys, services.intake.photos, services.intake.portal.http; "
            "assert 'boto3' not in sys.modules, 'boto3 imported at startup'")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=60, cwd=root)


# ---- orphans: uploads that no report ever referenced --------------------------------------------


@pytest.fixture
def bookkeeping():
    return IntakeStore(SqliteStore(":memory:"))


def uploaded(store, bookkeeping, data, hours_ago: float) -> str:
    url = store.store(data)
    name = url.rsplit("/", 1)[1]
    bookkeeping.photo_uploaded(name)
    with bookkeeping.sql.transaction() as tx:
        tx.execute("UPDATE intake_photos SET uploaded_at = %s WHERE name = %s",
                   ((datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(), name))
    return url


def test_an_old_upload_no_report_references_is_removed_and_the_rest_stay(store, bookkeeping,
                                                                        tmp_path):
    used = uploaded(store, bookkeeping, JPEG, hours_ago=72)
    orphan = uploaded(store, bookkeeping, PNG, hours_ago=72)
    fresh = uploaded(store, bookkeeping, WEBP, hours_ago=1)  # its report may still be coming
    bookkeeping.photos_used([used, "https://elsewhere.test/x.jpg"], "QRO-2026-000007")

    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 1

    kept = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert kept == sorted(u.rsplit("/", 1)[1] for u in (used, fresh))
    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 0
    assert orphan.rsplit("/", 1)[1] not in kept


def test_the_s3_store_removes_orphans_from_the_bucket(bookkeeping):
    s3 = FakeS3()
    store = S3PhotoStore("fotos", public_url="https://cdn.test/fotos", client=s3)
    orphan = uploaded(store, bookkeeping, JPEG, hours_ago=100)
    assert prune_orphans(store, bookkeeping, timedelta(hours=48)) == 1
    assert orphan.rsplit("/", 1)[1] not in s3.objects
