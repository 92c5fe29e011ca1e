"""Photos any service keeps (intake's citizens, crews in the field): every upload goes through
the image pipeline (shared.chassis.imaging) and only the re-encoded image is kept, under a name of
our own, in a local directory (default) or S3-compatible object storage; plus the safe way to
serve it and to read an upload from a request."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from .imaging import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    KINDS,
    CleanPhoto,
    Limits,
    PhotoRejected,
    check,
    clean,
    kind_of,
    open_photo,
    reencode,
    too_large,
)

__all__ = ["KINDS", "NAME", "CleanPhoto", "Limits", "LocalPhotoStore", "PhotoRejected",
           "PhotoStore", "Photos", "S3PhotoStore", "check", "clean", "kind_of",
           "media_response", "new_name", "read_upload", "store_from_config", "too_large",
           "upload_limit"]

# Names the store gives (new_name): 32 hex digits and the kind. Nothing else is ever served.
NAME = re.compile(r"^[0-9a-f]{32}\.(?:jpg|png|webp)$")
# Seeded names (same report retried, same bytes -> same name) live in a namespace of their own.
SEEDED = uuid.UUID("9f6c2a1e-4d0b-5f7a-8e3c-6b1d2f4a7c90")
NOT_THERE = ("404", "NoSuchKey", "NotFound")  # what S3 (and look-alikes) answer a HEAD of none
FORM_OVERHEAD = 64 * 1024  # what a multipart body may carry besides the photo itself
# Photos decoded at once in one process: a 50 megapixel PNG takes 200 MB while it is decoded.
DECODERS = 2
_decoding = Semaphore(DECODERS)


def new_name(kind: str, digest: str, seed: str | None = None) -> str:
    """A name of our own: a random UUID, or (with `seed`, e.g. the report's idempotency key) one
    derived from the seed and the upload's digest, so that a double submit stores the photo once
    and both tries reference the same URL. The client's filename is never used."""
    if seed is None:
        return f"{uuid.uuid4().hex}.{kind}"
    return f"{uuid.uuid5(SEEDED, f'{seed}:{digest}').hex}.{kind}"


def prepare(data: bytes, limits: Limits) -> CleanPhoto:
    """The pipeline, with the decoding and encoding on a real thread (Pillow releases the GIL),
    so that other requests of this process go on meanwhile. The header is read here first: a
    bomb or a file of another kind is refused before any thread is busy with it."""
    image, kind = open_photo(data, limits)
    with _decoding:
        return tpool.execute(reencode, image, kind, data, limits)


class PhotoStore(ABC):
    """Where photos go. `store(data)` cleans one, keeps it and answers its public URL."""

    limits: Limits = Limits()

    @property
    def max_bytes(self) -> int:
        return self.limits.max_bytes

    def prepare(self, data: bytes) -> CleanPhoto:
        """The re-encoded photo, or PhotoRejected saying why it is not one we keep."""
        return prepare(data, self.limits)

    def keep(self, photo: CleanPhoto, seed: str | None = None) -> str:
        """Keep a prepared photo; its public URL."""
        name = new_name(photo.kind, photo.digest, seed)
        self.put(name, photo.data, photo.content_type)
        return self.url(name)

    def store(self, data: bytes, seed: str | None = None) -> str:
        return self.keep(self.prepare(data), seed)

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
    def exists(self, name: str) -> bool:
        """Whether a photo is kept under `name` (a name of the store's own: see NAME)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the photo `name` (nothing if it is not there)."""


class LocalPhotoStore(PhotoStore):
    """A directory on disk, served by the service at `<public_base_url>/media/<name>`."""

    def __init__(self, directory: str | Path, public_base_url: str,
                 limits: Limits = Limits()) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.public_base_url = public_base_url.rstrip("/")
        self.limits = limits

    def put(self, name: str, data: bytes, content_type: str) -> None:
        target = self.directory / name
        if target.exists():  # a seeded name: the same photo is already there
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

    def exists(self, name: str) -> bool:
        return bool(NAME.match(name)) and (self.directory / name).is_file()

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
                 limits: Limits = Limits(), client: Any = None) -> None:
        if client is None:
            import boto3  # lazily: only deployments that store on S3 pay for importing it

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client
        self.bucket = bucket
        base = public_url or f"{(endpoint_url or 'https://s3.amazonaws.com').rstrip('/')}/{bucket}"
        self.public_base_url = base.rstrip("/")
        self.limits = limits

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type,
                               ContentDisposition=f'inline; filename="{name}"',
                               CacheControl="public, max-age=31536000, immutable")

    def url(self, name: str) -> str:
        return f"{self.public_base_url}/{name}"

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as error:  # botocore's ClientError: a 404 says there is none
            if getattr(error, "response", {}).get("Error", {}).get("Code") in NOT_THERE:
                return False
            raise
        return True

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)


def limits_from_config(config: dict[str, Any]) -> Limits:
    """PHOTO_MAX_BYTES (8 MiB), PHOTO_MAX_PIXELS (50 million), PHOTO_MAX_SIDE (2560)."""
    return Limits(max_bytes=int(config.get("PHOTO_MAX_BYTES") or DEFAULT_MAX_BYTES),
                  max_pixels=int(config.get("PHOTO_MAX_PIXELS") or DEFAULT_MAX_PIXELS),
                  max_side=int(config.get("PHOTO_MAX_SIDE") or DEFAULT_MAX_SIDE))


def store_from_config(config: dict[str, Any]) -> PhotoStore:
    """The store PHOTO_STORAGE names (`local`: PHOTO_DIR served under PUBLIC_URL, or `s3`:
    S3_BUCKET, S3_ENDPOINT_URL, S3_PUBLIC_URL), with the limits of limits_from_config."""
    limits = limits_from_config(config)
    kind = str(config.get("PHOTO_STORAGE") or "local").lower()
    if kind == "s3":
        return S3PhotoStore(str(config.get("S3_BUCKET") or "expediente-photos"),
                            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
                            public_url=config.get("S3_PUBLIC_URL") or None, limits=limits)
    if kind != "local":
        raise ValueError(f"PHOTO_STORAGE must be 'local' or 's3', not {kind!r}")
    return LocalPhotoStore(str(config.get("PHOTO_DIR") or "var/photos"),
                           str(config.get("PUBLIC_URL") or ""), limits=limits)


class Photos(DependencyProvider):
    """`self.photos` in an entrypoint: the configured PhotoStore."""

    def setup(self) -> None:
        self.store = store_from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> PhotoStore:
        return self.store


def media_response(store: PhotoStore, name: str) -> Response:
    """GET /media/<name> of a local store: the photo with its stored type, shown inline and
    never run (nosniff, a sandboxing CSP); 404 for any name the store did not generate."""
    found = store.read(name)
    if found is None:
        return Response("No encontrado / Not found", status=404, mimetype="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    data, content_type = found
    return Response(data, mimetype=content_type, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": f'inline; filename="{name}"',
    })


def read_upload(request: Request, field: str, max_bytes: int) -> bytes:
    """The uploaded bytes: multipart field `field`, or the raw body. The HTTP layer has read at
    most the door's `max_body` (upload_limit); a photo over `max_bytes` is too_large."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get(field)
        data = upload.stream.read(max_bytes + 1) if upload is not None else b""
    else:
        data = request.get_data(cache=False)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    return data


def upload_limit(config: dict[str, Any]) -> int:
    """The `max_body` of a photo door: the photo and, if multipart, the form around it."""
    return limits_from_config(config).max_bytes + FORM_OVERHEAD
