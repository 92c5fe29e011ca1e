"""Photos a citizen or a crew attaches: only real JPEG, PNG or WebP images are kept, decoded and
re-encoded without their metadata (the citizen's GPS position never gets published), upright,
bounded in size, under names of our own; what a file carries besides its pixels is gone."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from shared.chassis.imaging import Limits, PhotoRejected, check, clean, fitted, kind_of
from shared.chassis.photos import (
    NAME,
    LocalPhotoStore,
    S3PhotoStore,
    media_response,
    store_from_config,
)

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def encoded(image: Image.Image, kind: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind], **params)
    return out.getvalue()


def picture(width: int = 40, height: int = 20, mode: str = "RGB") -> Image.Image:
    """Two halves of different colours, so that a turn or a flip shows."""
    image = Image.new(mode, (width, height), "#c81e1e")
    image.paste(Image.new(mode, (width // 2, height), "#1e3cc8"), (width // 2, 0))
    return image


def phone_exif(orientation: int = 1) -> Image.Exif:
    """What a phone camera writes: maker, model, where the photo was taken."""
    exif = Image.Exif()
    exif[0x010F] = "SecretPhone"
    exif[0x0110] = "Model Vecina 12"
    exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (20.0, 35.0, 35.16), 3: "W", 4: (100.0, 23.0, 31.2)})
    return exif


def phone_jpeg(orientation: int = 1, width: int = 40, height: int = 20) -> bytes:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(picture(width, height), "jpg", exif=phone_exif(orientation),
                   comment=b"calle secreta 12", icc_profile=icc,
                   xmp=b"<x:xmpmeta>casa-de-ana</x:xmpmeta>")
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(GPS_IFD)[1] == "N"  # the test photo does carry a position
    return data


def chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header (with a correct CRC) declares `width` x `height` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def store(tmp_path):
    return LocalPhotoStore(tmp_path / "photos", "http://intake.test/", Limits(max_bytes=64 * 1024))


def kept(store: LocalPhotoStore, url: str) -> tuple[bytes, str]:
    found = store.read(url.rsplit("/", 1)[1])
    assert found is not None
    return found


# ---- what a photo is -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpg", "png", "webp"])
def test_a_photo_is_known_by_its_first_bytes(kind):
    data = encoded(picture(), kind)
    assert kind_of(data) == kind
    assert check(data) == kind


@pytest.mark.parametrize("data, reason", [
    (GIF, "not_an_image"),
    (HTML, "not_an_image"),                              # an HTML file renamed photo.jpg
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not_an_image"),    # RIFF, but a sound
    (b"\xff\xd8", "not_an_image"),                       # too short to be a JPEG
    (b"", "empty"),
])
def test_anything_else_is_refused_whatever_it_claims_to_be(data, reason):
    with pytest.raises(PhotoRejected) as refused:
        clean(data)
    assert refused.value.reason == reason
    assert refused.value.spanish and refused.value.english
    assert refused.value.spanish in str(refused.value) and refused.value.english in str(
        refused.value)


def test_a_photo_over_the_byte_limit_is_refused_in_spanish_and_english():
    data = encoded(picture(), "png")
    with pytest.raises(PhotoRejected) as refused:
        clean(data, Limits(max_bytes=len(data) - 1))
    assert refused.value.reason == "too_large"
    assert "La foto pesa más de" in str(refused.value) and "larger than" in str(refused.value)
    assert clean(data, Limits(max_bytes=len(data))).kind == "png"  # exactly at the limit: fine


# ---- metadata: nothing but the pixels is kept ---------------------------------------------------


def test_the_phones_gps_position_and_device_are_gone_from_the_kept_photo(store):
    url = store.store(phone_jpeg())
    data, content_type = kept(store, url)
    assert content_type == "image/jpeg"
    photo = opened(data)
    assert photo.format == "JPEG" and photo.size == (40, 20)
    assert dict(photo.getexif()) == {} and photo.getexif().get_ifd(GPS_IFD) == {}
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(photo.info)
    for secret in (b"Exif", b"SecretPhone", b"Model Vecina", b"calle secreta", b"casa-de-ana"):
        assert secret not in data


def test_a_png_keeps_no_text_chunks_and_a_webp_no_exif():
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "vive en la calle secreta 12")
    text.add_itxt("XML:com.adobe.xmp", "casa-de-ana")
    png = clean(encoded(picture(), "png", pnginfo=text, exif=phone_exif()))
    webp = clean(encoded(picture(), "webp", exif=phone_exif(), xmp=b"casa-de-ana"))
    for photo in (png, webp):
        assert b"calle secreta" not in photo.data and b"casa-de-ana" not in photo.data
        assert b"SecretPhone" not in photo.data
        assert dict(opened(photo.data).getexif()) == {}
    assert png.kind == "png" and webp.kind == "webp"


@pytest.mark.parametrize("orientation, size", [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)),
                                               (8, (20, 40))])
def test_a_photo_taken_sideways_is_kept_upright(orientation, size):
    photo = opened(clean(phone_jpeg(orientation)).data)
    assert photo.size == size
    if orientation == 6:  # turned clockwise: the left half (red) is now on top
        red, blue = photo.getpixel((10, 5)), photo.getpixel((10, 35))
        assert red[0] > 150 > red[2] and blue[2] > 150 > blue[0]


# ---- bombs, polyglots and broken files ---------------------------------------------------------


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (8_000, 8_000)])
def test_a_png_that_declares_too_many_pixels_is_refused_before_it_is_decoded(store, tmp_path,
                                                                            width, height):
    bomb = png_declaring(width, height)
    assert len(bomb) < 200
    with pytest.raises(PhotoRejected) as refused:
        store.store(bomb)
    assert refused.value.reason == "too_many_pixels"
    assert "demasiados píxeles" in refused.value.spanish and "megapixels" in refused.value.english
    assert list((tmp_path / "photos").iterdir()) == []


def test_the_pixel_limit_is_a_setting():
    data = encoded(picture(100, 100), "png")
    with pytest.raises(PhotoRejected, match="megapixels"):
        clean(data, Limits(max_pixels=9_999))
    assert clean(data, Limits(max_pixels=10_000)).width == 100


def test_html_appended_to_a_real_jpeg_is_not_kept(store):
    polyglot = phone_jpeg() + HTML
    data, content_type = kept(store, store.store(polyglot))
    assert b"<script" not in data and b"<html" not in data and b"alert" not in data
    assert content_type == "image/jpeg" and opened(data).size == (40, 20)


@pytest.mark.parametrize("data", [
    b"\xff\xd8\xff\xe0" + HTML,                          # HTML behind JPEG's magic bytes
    b"\x89PNG\r\n\x1a\n" + HTML,                         # or PNG's
    b"RIFF\x24\x00\x00\x00WEBPVP8 " + HTML,              # or WebP's
    b"\x89PNG\r\n\x1a\n" + encoded(picture(), "jpg")[8:],  # a JPEG that says it is a PNG
    b"\x89PNG\r\n\x1a\n" + encoded(picture(), "webp"),
])
def test_a_file_that_does_not_decode_as_the_kind_it_claims_is_refused(store, tmp_path, data):
    with pytest.raises(PhotoRejected) as refused:
        store.store(data)
    assert refused.value.reason == "not_an_image"
    assert list((tmp_path / "photos").iterdir()) == []


@pytest.mark.parametrize("kind", ["jpg", "png", "webp"])
def test_a_truncated_photo_is_refused(kind):
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    data = encoded(noisy, kind)
    with pytest.raises(PhotoRejected) as refused:
        clean(data[: len(data) // 2])
    assert refused.value.reason == "not_an_image"


# ---- size and kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind, size, kept_size", [
    ("png", (3000, 1000), (2560, 853)),
    ("jpg", (6000, 3000), (2560, 1280)),  # decoded at half scale first (draft)
    ("webp", (1000, 2600), (985, 2560)),
    ("jpg", (2560, 1000), (2560, 1000)),  # at the cap: untouched
])
def test_a_large_photo_is_scaled_down_to_the_longest_side_cap(kind, size, kept_size):
    photo = clean(encoded(picture(*size), kind))
    assert (photo.width, photo.height) == kept_size == opened(photo.data).size
    assert photo.kind == kind


def test_the_longest_side_is_a_setting():
    photo = clean(encoded(picture(400, 200), "jpg"), Limits(max_side=100))
    assert opened(photo.data).size == (100, 50)
    assert fitted((400, 200), 100) == (100, 50) and fitted((10, 5), 100) == (10, 5)


@pytest.mark.parametrize("kind, mode, kept_mode", [
    ("png", "RGBA", "RGBA"),   # a screenshot with transparency stays one
    ("png", "P", "RGB"),
    ("png", "L", "L"),
    ("png", "I;16", "L"),      # 16-bit grey
    ("jpg", "CMYK", "RGB"),
    ("jpg", "L", "L"),
    ("webp", "RGBA", "RGBA"),
])
def test_every_mode_a_camera_or_editor_writes_is_kept_in_one_a_browser_shows(kind, mode,
                                                                           kept_mode):
    source = picture(8, 8, "RGB").convert(mode) if mode != "I;16" else Image.new(mode, (8, 8),
                                                                                    40000)
    if mode == "RGBA":
        source.putpixel((0, 0), (0, 0, 0, 0))
    photo = opened(clean(encoded(source, kind)).data)
    assert photo.mode == kept_mode and photo.size == (8, 8)


def test_a_palette_png_with_a_transparent_colour_keeps_its_transparency():
    source = Image.new("P", (8, 8), 0)
    source.putpalette([255, 0, 0, 0, 0, 255])
    source.putpixel((0, 0), 1)
    photo = opened(clean(encoded(source, "png", transparency=0)).data)
    assert photo.mode == "RGBA"
    assert photo.getpixel((1, 1))[3] == 0 and photo.getpixel((0, 0)) == (0, 0, 255, 255)


# ---- the store ------------------------------------------------------------------------------


def test_the_local_store_keeps_the_clean_photo_under_a_random_name(store, tmp_path):
    png = encoded(picture(), "png")
    url = store.store(png)
    name = url.rsplit("/", 1)[1]
    assert url == f"http://intake.test/media/{name}"
    assert NAME.match(name) and name.endswith(".png")
    data, content_type = kept(store, url)
    assert content_type == "image/png" and (tmp_path / "photos" / name).read_bytes() == data
    assert opened(data).tobytes() == picture().tobytes()  # PNG: the same pixels
    assert store.store(png) != url  # the same bytes again: another random name


def test_the_client_filename_plays_no_part_and_nothing_else_is_left_behind(store, tmp_path):
    store.store(encoded(picture(), "jpg"))
    store.store(encoded(picture(), "webp"))
    files = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert len(files) == 2
    assert all(re.match(r"^[0-9a-f]{32}\.(jpg|webp)$", f) for f in files)


def test_a_retried_report_stores_its_photo_once(store, tmp_path):
    jpeg = phone_jpeg()
    first = store.store(jpeg, seed="web:5f0c6a3e-key")
    again = store.store(jpeg, seed="web:5f0c6a3e-key")
    other = store.store(jpeg, seed="web:another-key")
    assert first == again != other
    assert NAME.match(first.rsplit("/", 1)[1])
    assert len(list((tmp_path / "photos").iterdir())) == 2


@pytest.mark.parametrize("name", [
    "../secret.jpg", "x.jpg", "0" * 32 + ".gif", "0" * 32 + ".JPG", "0" * 32 + ".jpg/..",
    ".upload-abc", "0" * 32 + ".html",
])
def test_only_generated_names_are_served(store, name):
    assert store.read(name) is None
    assert media_response(store, name).status_code == 404


def test_a_generated_name_that_is_not_there_is_not_served(store):
    assert store.read("0" * 32 + ".jpg") is None


def test_a_photo_is_served_inline_with_its_type_and_never_run(store):
    name = store.store(encoded(picture(), "webp")).rsplit("/", 1)[1]
    served = media_response(store, name)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert "default-src 'none'" in served.headers["Content-Security-Policy"]
    assert served.headers["Content-Disposition"] == f'inline; filename="{name}"'


def test_the_store_knows_its_own_urls(store):
    url = store.store(encoded(picture(), "jpg"))
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


def test_the_s3_store_puts_the_clean_object_with_its_content_type():
    s3 = FakeS3()
    store = S3PhotoStore("fotos", public_url="https://cdn.test/fotos/", client=s3)
    url = store.store(encoded(picture(), "webp", exif=phone_exif()))
    name = url.rsplit("/", 1)[1]
    assert url == f"https://cdn.test/fotos/{name}"
    put = s3.objects[name]
    assert put["ContentType"] == "image/webp" and put["Bucket"] == "fotos"
    assert put["ContentDisposition"] == f'inline; filename="{name}"'
    assert b"SecretPhone" not in put["Body"] and opened(put["Body"]).format == "WEBP"
    with pytest.raises(PhotoRejected):
        store.store(GIF)
    assert list(s3.objects) == [name]


def test_the_s3_store_defaults_to_path_style_urls_on_its_endpoint():
    store = S3PhotoStore("fotos", endpoint_url="http://minio.test:9000", client=FakeS3())
    assert store.url("a.jpg") == "http://minio.test:9000/fotos/a.jpg"


def test_configuration_picks_the_store_and_its_limits(tmp_path):
    local = store_from_config({"PHOTO_STORAGE": "local", "PHOTO_DIR": str(tmp_path / "p"),
                               "PUBLIC_URL": "http://x.test", "PHOTO_MAX_BYTES": 2048,
                               "PHOTO_MAX_PIXELS": 1000, "PHOTO_MAX_SIDE": 640})
    assert isinstance(local, LocalPhotoStore) and local.max_bytes == 2048
    assert local.limits == Limits(max_bytes=2048, max_pixels=1000, max_side=640)
    with pytest.raises(ValueError):
        store_from_config({"PHOTO_STORAGE": "ftp"})


def test_boto3_is_imported_only_by_a_deployment_that_stores_on_s3():
    import subprocess
    import sys

    code = ("import sys, services.intake.photos, services.intake.portal.http; "
            "assert 'boto3' not in sys.modules, 'boto3 imported at startup'")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=60, cwd=root)
