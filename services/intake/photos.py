"""Photos a citizen attaches at intake: checked by their first bytes, named by us, kept in a local
directory (default) or S3-compatible object storage; plus the two HTTP doors that take and serve
them (a mixin of the portal, so every channel shares one store)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, json_response

from .errors import http_errors
from .store import PHOTO_NAME, IntakeStore

log = logging.getLogger(__name__)
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
PRUNE_EVERY_SECONDS = 3600
FORM_OVERHEAD = 64 * 1024  # what a multipart body may carry besides the photo itself
# extension -> content type; the only kinds a phone camera or gallery gives that every browser
# shows. GIF, HEIC, SVG (scriptable) and anything else are refused.
KINDS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
NAME = PHOTO_NAME
# Seeded names (same report retried, same bytes -> same name) live in a namespace of their own.
SEEDED = uuid.UUID("9f6c2a1e-4d0b-5f7a-8e3c-6b1d2f4a7c90")


class PhotoRejected(ValueError):
    """The upload is not a photo we keep; `str()` is the Spanish + English message."""

    def __init__(self, reason: str, spanish: str, english: str) -> None:
        super().__init__(f"{spanish} / {english}")
        self.reason = reason  # empty | too_large | not_an_image
        self.spanish = spanish
        self.english = english


def kind_of(data: bytes) -> str | None:
    """The extension that the content's magic bytes say it is ('jpg', 'png', 'webp'), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The photo's extension, or PhotoRejected saying why it is not accepted."""
    if not data:
        raise PhotoRejected("empty", "La foto está vacía.", "The photo is empty.")
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    kind = kind_of(data)
    if kind is None:
        raise PhotoRejected("not_an_image", "El archivo no es una foto JPEG, PNG o WebP.",
                            "The file is not a JPEG, PNG or WebP image.")
    return kind


def too_large(max_bytes: int) -> PhotoRejected:
    mib = max_bytes / (1024 * 1024)
    return PhotoRejected("too_large", f"La foto pesa más de {mib:.3g} MB; envía una más ligera.",
                         f"The photo is larger than {mib:.3g} MiB.")


def new_name(kind: str, data: bytes, seed: str | None = None) -> str:
    """A name of our own: a random UUID, or (with `seed`, e.g. the report's idempotency key) one
    derived from the seed and the bytes, so that a double submit stores the photo once and both
    tries reference the same URL. The client's filename is never used."""
    if seed is None:
        return f"{uuid.uuid4().hex}.{kind}"
    digest = hashlib.sha256(data).hexdigest()
    return f"{uuid.uuid5(SEEDED, f'{seed}:{digest}').hex}.{kind}"


class PhotoStore(ABC):
    """Where photos go. `store(data)` checks and keeps one and answers its public URL."""

    max_bytes: int = DEFAULT_MAX_BYTES

    def store(self, data: bytes, seed: str | None = None) -> str:
        kind = check(data, self.max_bytes)
        name = new_name(kind, data, seed)
        self.put(name, data, KINDS[kind])
        return self.url(name)

    @abstractmethod
    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Keep the bytes under `name`."""

    @abstractmethod
    def url(self, name: str) -> str:
        """The public URL of the photo `name`."""

    def owns(self, url: str) -> bool:
        """Whether `url` is one this store handed out (a photo kept across a form's steps)."""
        name = url.rpartition("/")[2]
        return bool(NAME.match(name)) and url == self.url(name)

    def read(self, name: str) -> tuple[bytes, str] | None:
        """(bytes, content type) of a photo this service serves itself; None if it has none."""
        return None

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the photo `name` (nothing if it is not there)."""


class LocalPhotoStore(PhotoStore):
    """A directory on disk, served by intake at `<public_base_url>/media/<name>`."""

    def __init__(self, directory: str | Path, public_base_url: str,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.public_base_url = public_base_url.rstrip("/")
        self.max_bytes = max_bytes

    def put(self, name: str, data: bytes, content_type: str) -> None:
        target = self.directory / name
        if target.exists():  # a seeded name: the same bytes are already there
            return
        # Written aside and renamed, so a reader never sees half a photo.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def url(self, name: str) -> str:
        return f"{self.public_base_url}/media/{name}"

    def delete(self, name: str) -> None:
        if NAME.match(name):
            (self.directory / name).unlink(missing_ok=True)

    def read(self, name: str) -> tuple[bytes, str] | None:
        if not NAME.match(name):
            return None
        try:
            data = (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
        return data, KINDS[name.rsplit(".", 1)[1]]


class S3PhotoStore(PhotoStore):
    """An S3-compatible bucket (AWS, MinIO, Ceph…); photos are read from `public_url`, which
    defaults to `<endpoint>/<bucket>` (path-style)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, public_url: str | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, client: Any = None) -> None:
        if client is None:
            import boto3  # lazily: only deployments that store on S3 pay for importing it

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client
        self.bucket = bucket
        base = public_url or f"{(endpoint_url or 'https://s3.amazonaws.com').rstrip('/')}/{bucket}"
        self.public_base_url = base.rstrip("/")
        self.max_bytes = max_bytes

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type,
                               CacheControl="public, max-age=31536000, immutable")

    def url(self, name: str) -> str:
        return f"{self.public_base_url}/{name}"

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)


def store_from_config(config: dict[str, Any]) -> PhotoStore:
    """The store PHOTO_STORAGE names (`local` or `s3`), configured from intake's config."""
    max_bytes = int(config.get("PHOTO_MAX_BYTES") or DEFAULT_MAX_BYTES)
    kind = str(config.get("PHOTO_STORAGE") or "local").lower()
    if kind == "s3":
        return S3PhotoStore(str(config.get("S3_BUCKET") or "expediente-photos"),
                            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
                            public_url=config.get("S3_PUBLIC_URL") or None, max_bytes=max_bytes)
    if kind != "local":
        raise ValueError(f"PHOTO_STORAGE must be 'local' or 's3', not {kind!r}")
    return LocalPhotoStore(str(config.get("PHOTO_DIR") or "var/photos"),
                           str(config.get("PUBLIC_URL") or ""), max_bytes=max_bytes)


class Photos(DependencyProvider):
    """`self.photos` in an entrypoint: the configured PhotoStore."""

    def setup(self) -> None:
        self.store = store_from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> PhotoStore:
        return self.store


def prune_orphans(photos: PhotoStore, store: IntakeStore, older_than: timedelta) -> int:
    """Remove the photos uploaded longer ago than `older_than` that no report references (a
    citizen who uploaded and never sent the report, or someone filling the disk); how many."""
    removed = 0
    for name in store.orphan_photos(datetime.now(UTC) - older_than):
        photos.delete(name)
        store.forget_photo(name)
        removed += 1
    if removed:
        log.info("removed %d photos that no report references", removed)
    return removed


def upload_limit(config: dict[str, Any]) -> int:
    """The largest body a photo door reads: the photo and, if multipart, the form around it."""
    return int(config.get("PHOTO_MAX_BYTES") or DEFAULT_MAX_BYTES) + FORM_OVERHEAD


def read_upload(request: Request, field: str, max_bytes: int) -> bytes:
    """The uploaded bytes (multipart field `field`, or the raw body). A body over the limit is
    refused before it is read, and at most one byte past the limit is ever held in memory."""
    multipart = request.mimetype == "multipart/form-data"
    limit = max_bytes + (FORM_OVERHEAD if multipart else 0)
    if (request.content_length or 0) > limit:
        raise too_large(max_bytes)
    if not multipart:
        stream = request.stream
        if request.content_length is None and "chunked" in request.headers.get(
                "Transfer-Encoding", "").lower():
            # werkzeug reads nothing without a length; the server's input decodes the chunks.
            stream = request.environ["wsgi.input"]
        return stream.read(max_bytes + 1)
    request.max_content_length = limit  # a chunked body has no length to check up front
    try:
        upload = request.files.get(field)
    except RequestEntityTooLarge:
        raise too_large(max_bytes) from None
    return upload.stream.read(max_bytes + 1) if upload is not None else b""


class PhotoEndpoints:
    """POST /api/v1/photos (the mobile app, the chatbot) and GET /media/<name> (local store)."""

    photos = Photos()
    config = Config()

    @http("POST", "/api/v1/photos", max_body=upload_limit)
    @http_errors
    def api_upload_photo(self, request: Request) -> Response:
        """POST /api/v1/photos with a raw JPEG/PNG/WebP body (or multipart field `photo`)
        -> 201 {"url": "http://localhost:8000/media/3f2a….jpg"}; reference it in `media_urls`."""
        store = self.photos
        try:
            url = store.store(read_upload(request, "photo", store.max_bytes))
            self.intake.store.photo_uploaded(url.rpartition("/")[2])
        except PhotoRejected as rejected:
            status = 413 if rejected.reason == "too_large" else 400
            return json_response({"errors": {"photo": [str(rejected)]}}, status)
        except Exception:  # the disk or the object store: the client may retry
            log.exception("the photo store failed")
            return json_response({"errors": {"photo": [
                "No pudimos guardar la foto; intenta de nuevo. / The photo could not be stored; "
                "try again."]}}, 503)
        return json_response({"url": url}, 201, {"Location": url})

    @timer(interval=PRUNE_EVERY_SECONDS)
    def prune_orphan_photos(self) -> None:
        """Every replica sweeps (a delete is idempotent); PHOTO_ORPHAN_HOURS, 0 turns it off."""
        hours = float(self.config.get("PHOTO_ORPHAN_HOURS") or 0)
        if hours > 0:
            prune_orphans(self.photos, self.intake.store, timedelta(hours=hours))

    @http("GET", "/media/<string:name>")
    def media_photo(self, request: Request, name: str) -> Response:
        """A photo kept in the local store, e.g. GET /media/3f2a….jpg (404 for any other name)."""
        found = self.photos.read(name)
        if found is None:
            return Response("No encontrado / Not found", status=404, mimetype="text/plain")
        data, content_type = found
        return Response(data, mimetype=content_type, headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        })
