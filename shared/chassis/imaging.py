"""The image pipeline every photo goes through before it is kept: decoded with Pillow as the kind
its first bytes claim, refused if it is a decompression bomb or does not decode, turned upright,
scaled down, and re-encoded from its pixels alone (no EXIF, GPS, XMP, ICC profile, comments or
text chunks; nothing appended to the file survives)."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
# A 48 or 50 megapixel phone photo (8160 x 6120) fits; a PNG that declares 100,000 x 100,000
# does not. Memory stays bounded: JPEGs decode at a reduced scale (draft) when they are large.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_SIDE = 2560
# The kinds a phone camera or gallery gives that every browser shows, by extension. GIF, HEIC,
# SVG (scriptable) and anything else are refused. A photo keeps its kind: a JPEG stays a JPEG, a
# PNG (a screenshot, transparency) stays a PNG.
KINDS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
ENCODING = {"jpg": {"quality": 85}, "png": {"compress_level": 6},
            "webp": {"quality": 80, "method": 2}}  # method 4 takes twice the time
# EXIF orientation -> the transposition that makes the picture upright.
UPRIGHT = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
           4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
           6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE],
           8: [Image.Transpose.ROTATE_90]}
ORIENTATION = 0x0112


@dataclass(frozen=True)
class Limits:
    """What a photo may be: bytes uploaded, pixels declared, longest side kept (scaled down)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE


@dataclass(frozen=True)
class CleanPhoto:
    """A re-encoded photo: what is stored and served. `digest` is the upload's (for names)."""

    data: bytes
    kind: str
    width: int
    height: int
    digest: str

    @property
    def content_type(self) -> str:
        return KINDS[self.kind]


class PhotoRejected(ValueError):
    """The upload is not a photo we keep; `str()` is the Spanish + English message."""

    def __init__(self, reason: str, spanish: str, english: str) -> None:
        super().__init__(f"{spanish} / {english}")
        self.reason = reason  # empty | too_large | not_an_image | too_many_pixels
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


def too_large(max_bytes: int) -> PhotoRejected:
    mib = max_bytes / (1024 * 1024)
    return PhotoRejected("too_large", f"La foto pesa más de {mib:.3g} MB; envía una más ligera.",
                         f"The photo is larger than {mib:.3g} MiB.")


def not_an_image() -> PhotoRejected:
    return PhotoRejected("not_an_image", "El archivo no es una foto JPEG, PNG o WebP.",
                         "The file is not a JPEG, PNG or WebP image.")


def too_many_pixels(max_pixels: int) -> PhotoRejected:
    mp = max_pixels / 1_000_000
    return PhotoRejected("too_many_pixels",
                         f"La foto tiene demasiados píxeles (más de {mp:g} megapíxeles).",
                         f"The image has more than {mp:g} megapixels.")


def check(data: bytes, limits: Limits = Limits()) -> str:
    """The kind its first bytes claim, or PhotoRejected (empty, too large, not an image)."""
    if not data:
        raise PhotoRejected("empty", "La foto está vacía.", "The photo is empty.")
    if len(data) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    kind = kind_of(data)
    if kind is None:
        raise not_an_image()
    return kind


def open_photo(data: bytes, limits: Limits = Limits()) -> tuple[Image.Image, str]:
    """Read the image's header only, as the kind it claims: (lazy image, kind), or
    PhotoRejected. Cheap: nothing is decoded yet, so a bomb is refused before it explodes.

    Pillow's own bomb check warns; the warning is made an error here (this runs on the
    caller's thread, where changing the warning filters for a moment is safe)."""
    kind = check(data, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[FORMATS[kind]])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise too_many_pixels(limits.max_pixels) from None
        except Exception:  # Pillow raises many kinds for a file it cannot read
            raise not_an_image() from None
    width, height = image.size
    if image.format != FORMATS[kind] or width < 1 or height < 1:
        raise not_an_image()
    if width * height > limits.max_pixels:
        raise too_many_pixels(limits.max_pixels)
    return image, kind


def reencode(image: Image.Image, kind: str, data: bytes, limits: Limits = Limits()) -> CleanPhoto:
    """Decode `image` (from open_photo) fully, make it upright, cap its longest side, and
    encode its pixels alone. A truncated or corrupt file is PhotoRejected. CPU-bound: Pillow
    releases the GIL, so this may run on a worker thread."""
    target = fitted(image.size, limits.max_side)
    try:
        if kind == "jpg" and target != image.size:
            image.draft(None, target)  # decode at 1/2, 1/4 or 1/8 scale: less time and memory
        image.load()
        orientation = _orientation(image)
        if image.size != target:
            image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
        for transposition in UPRIGHT.get(orientation, []):
            image = image.transpose(transposition)
        pixels = _pixels_only(image, kind)
        out = io.BytesIO()
        pixels.save(out, FORMATS[kind], **ENCODING[kind])
    except PhotoRejected:
        raise
    except Exception:  # truncated, corrupt, a mode we cannot write: not a photo we keep
        raise not_an_image() from None
    finally:
        image.close()
    return CleanPhoto(out.getvalue(), kind, pixels.width, pixels.height,
                      hashlib.sha256(data).hexdigest())


def clean(data: bytes, limits: Limits = Limits()) -> CleanPhoto:
    """The whole pipeline on the caller's thread: check, open, decode, re-encode."""
    image, kind = open_photo(data, limits)
    return reencode(image, kind, data, limits)


def fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled down (aspect kept) so that its longest side is at most `max_side`."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return size
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ORIENTATION) or 1)
    except Exception:  # unreadable EXIF: the picture stays as it was taken
        return 1


def _pixels_only(image: Image.Image, kind: str) -> Image.Image:
    """A new image made of `image`'s pixels and nothing else (Pillow carries comments and ICC
    profiles from `info` into what it saves), in a mode the kind can hold."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: keep the top 8 bits
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if image.mode in ("1", "L") and kind != "webp":
        mode = "L"
    elif alpha and kind != "jpg":
        mode = "RGBA"
    else:
        mode = "RGB"
    converted = image if image.mode == mode else image.convert(mode)
    return Image.frombytes(mode, converted.size, converted.tobytes())
