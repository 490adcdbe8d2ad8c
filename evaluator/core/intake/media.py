"""Media intake: turn an image reference into one decoded RGB image, safely, once.

Sources: an ``https://`` URL (fetched with the SSRF guard of ``netguard``), a
``data:image/...;base64,`` URI, an asset reference (``runflow://assets/{uuid}`` or
``asset://{id}``, resolved by the caller's asset store) or — library and CLI only —
a local path. Every refusal is an ``InvalidMediaError`` whose detail names the field
and says what to do; nothing here lets a traceback escape.

Limits and why:
- formats JPEG, PNG, WebP — what the hosted API accepts; others are refused by name.
- ``max_pixels`` 40 MP — a 40 MP RGB image is ~120 MB decoded; well under Pillow's own
  decompression-bomb limit (~89.5 MP). Checked from the header, before decoding.
- ``max_bytes`` 25 MiB — larger than any sane 40 MP JPEG/WebP, small enough that a
  fetch cannot fill memory; enforced while reading, whatever Content-Length claims.
- fetch timeout 10 s, at most 3 redirects, each hop's address re-checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.request import url2pathname

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagejury.core.intake.netguard import Resolver, check_url, pinned_request
from imagejury.errors import FetchFailedError, InvalidMediaError, UnsafeURLError
from imagejury.models.imaging import to_rgb

if TYPE_CHECKING:
    from imagejury.core.schema import EvaluationRequest

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
_DISPLAY = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
_MIME_TO_FORMAT = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/x-png": "PNG",
    "image/webp": "WEBP",
}
_MIME_NAMES = {  # unsupported image types we can name
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
    "image/tiff": "TIFF",
    "image/svg+xml": "SVG",
    "image/heic": "HEIC",
    "image/heif": "HEIF",
    "image/avif": "AVIF",
    "image/jxl": "JPEG XL",
    "image/jp2": "JPEG 2000",
    "image/x-icon": "ICO",
    "image/vnd.microsoft.icon": "ICO",
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_B64_WHITESPACE = re.compile(r"[ \t\r\n]+")
#: data: header (media type and parameters) may not be longer than this
_DATA_HEADER_MAX = 256
_FETCH_HEADERS = {
    "Accept": "image/webp,image/png,image/jpeg;q=0.9,*/*;q=0.1",
    # identity: a compressed body could expand past the byte cap within one chunk
    "Accept-Encoding": "identity",
    "User-Agent": "imagejury/0.1 (image evaluation; media fetch)",
}

SourceKind = Literal["url", "data", "path", "asset"]
AssetResolver = Callable[[str], Path]
# decode_image_bytes(data, limits, *, source_kind=, field=, declared_format=) -> DecodedImage, or a drop-in
Decoder = Callable[..., "DecodedImage"]


class MediaLimits(BaseModel):
    """What media intake accepts. Defaults are the service's; the CLI may loosen paths."""

    model_config = ConfigDict(frozen=True)

    max_pixels: int = Field(default=40_000_000, gt=0, description="width*height cap, checked before decoding")
    max_bytes: int = Field(default=25 * 1024 * 1024, gt=0, description="encoded size cap, enforced while reading")
    allowed_formats: frozenset[str] = SUPPORTED_FORMATS
    fetch_timeout_s: float = Field(default=10.0, gt=0, description="whole fetch, all redirects included")
    max_redirects: int = Field(default=3, ge=0)
    allow_local_paths: bool = Field(default=False, description="library/CLI only; never in the service")
    allow_loopback_urls: bool = Field(default=False, description="testing only: admits 127/8 and ::1, nothing else")
    draft_size: tuple[int, int] | None = Field(
        default=None, description="JPEG only: decode at a reduced scale no smaller than this (w, h)"
    )

    @field_validator("allowed_formats", mode="before")
    @classmethod
    def _formats_known(cls, value: object) -> frozenset[str]:
        names = frozenset(str(v).upper() for v in value)  # type: ignore[attr-defined]
        unknown = names - SUPPORTED_FORMATS
        if unknown or not names:
            raise ValueError(f"allowed_formats must be a non-empty subset of {sorted(SUPPORTED_FORMATS)}")
        return names


@dataclass
class DecodedImage:
    """An image decoded once: RGB pixels, a content key, and where it came from."""

    image: Image.Image  # RGB, EXIF orientation applied, alpha composited on white
    key: str  # sha256 of the encoded bytes, hex: the feature-cache key
    original_size: tuple[int, int]  # (w, h) as displayed, before any draft reduction
    format: str  # "JPEG" | "PNG" | "WEBP"
    source_kind: SourceKind
    n_bytes: int = 0


# ---------------------------------------------------------------- entry point
def classify_source(source: str) -> SourceKind:
    """Which kind of reference a string is (no I/O)."""
    head = source[:32].lower()
    if head.startswith("data:"):
        return "data"
    if head.startswith(("asset://", "runflow://")):
        return "asset"
    match = _SCHEME.match(source[:64])
    if match and len(match.group(1)) > 1 and match.group(1).lower() != "file":
        return "url"
    return "path"


def load_image(
    source: str,
    limits: MediaLimits | None = None,
    *,
    asset_resolver: AssetResolver | None = None,
    base_dir: Path | None = None,
    field: str = "generated_image_url",
    resolver: Resolver | None = None,
    decoder: Decoder | None = None,
) -> DecodedImage:
    """Fetch or read ``source`` and decode it under ``limits``; raise InvalidMediaError.

    ``asset_resolver`` maps an asset id (the uuid of ``runflow://assets/{uuid}`` or
    the id of ``asset://{id}``) to a file; ``base_dir`` anchors relative local paths;
    ``field`` names the request field in messages; ``resolver`` replaces DNS (tests);
    ``decoder`` replaces ``decode_image_bytes`` (same signature and limits; the batch
    engine's GPU JPEG decode, ``gpu_decode.device_jpeg_decoder``).
    """
    limits = limits or MediaLimits()
    if not isinstance(source, str) or not source.strip():
        raise InvalidMediaError("no image given (empty string)", field)
    source = source.strip()
    kind = classify_source(source)
    declared: str | None = None
    if kind == "data":
        data, declared = read_data_uri(source, limits, field=field)
    elif kind == "asset":
        data = read_asset(source, limits, asset_resolver, field=field)
    elif kind == "url":
        data = fetch_url(source, limits, field=field, resolver=resolver)
    else:
        data = read_local_file(source, limits, base_dir=base_dir, field=field)
    decode = decoder or decode_image_bytes
    return decode(data, limits, source_kind=kind, field=field, declared_format=declared)


def load_request_images(
    request: EvaluationRequest,
    limits: MediaLimits | None = None,
    *,
    asset_resolver: AssetResolver | None = None,
    base_dir: Path | None = None,
    resolver: Resolver | None = None,
    decoder: Decoder | None = None,
) -> tuple[DecodedImage, list[DecodedImage]]:
    """The request's generated image and its reference images, each loaded once.

    Errors name the exact field (``generated_image_url``, ``reference_images[1].url``);
    a reference given by the same string as an earlier image is not fetched again.
    """
    seen: dict[str, DecodedImage] = {}

    def one(source: str, field: str) -> DecodedImage:
        if source not in seen:
            seen[source] = load_image(
                source,
                limits,
                asset_resolver=asset_resolver,
                base_dir=base_dir,
                field=field,
                resolver=resolver,
                decoder=decoder,
            )
        return seen[source]

    generated = one(request.generated_image_url, "generated_image_url")
    references = [one(ref.url, f"reference_images[{i}].url") for i, ref in enumerate(request.reference_images)]
    return generated, references


# ---------------------------------------------------------------- sources
def read_data_uri(source: str, limits: MediaLimits, *, field: str) -> tuple[bytes, str]:
    """Decode a ``data:image/<type>;base64,<payload>`` URI strictly; return (bytes, declared format)."""
    comma = source.find(",", 0, _DATA_HEADER_MAX + 6)
    if comma < 0:
        raise InvalidMediaError("malformed data URI: expected data:image/<type>;base64,<data>", field)
    parts = [p.strip() for p in source[5:comma].split(";")]
    mime = parts[0].lower()
    params = {p.lower() for p in parts[1:]}
    if not mime:
        raise InvalidMediaError("data URI has no media type; use data:image/png;base64,...", field)
    if mime not in _MIME_TO_FORMAT:
        if mime in _MIME_NAMES:
            raise InvalidMediaError(_unsupported(_MIME_NAMES[mime], limits), field)
        raise InvalidMediaError(
            f"data URI media type {mime[:60]!r} is not a supported image type; {_use(limits)}", field
        )
    declared = _MIME_TO_FORMAT[mime]
    if declared not in limits.allowed_formats:
        raise InvalidMediaError(_unsupported(_DISPLAY[declared], limits), field)
    if "base64" not in params:
        raise InvalidMediaError("data URI must be base64-encoded (data:image/png;base64,...)", field)
    payload = source[comma + 1 :]
    if not payload:
        raise InvalidMediaError("data URI has no data after the comma", field)
    if len(payload) // 4 * 3 > limits.max_bytes + 3:
        raise InvalidMediaError(_too_many_bytes(len(payload) // 4 * 3, limits), field)
    # line breaks are what `base64 FILE` (76-column lines) and MIME encoders write; the
    # alphabet is still checked strictly once they are gone
    payload = _B64_WHITESPACE.sub("", payload)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMediaError(f"data URI payload is not valid base64 ({exc})", field) from None
    if len(data) > limits.max_bytes:
        raise InvalidMediaError(_too_many_bytes(len(data), limits), field)
    return data, declared


def read_asset(source: str, limits: MediaLimits, asset_resolver: AssetResolver | None, *, field: str) -> bytes:
    """Resolve ``runflow://assets/{uuid}`` or ``asset://{id}`` through the asset store and read it."""
    lowered = source.lower()
    if lowered.startswith("runflow://"):
        prefix = "runflow://assets/"
        if not lowered.startswith(prefix):
            raise InvalidMediaError("runflow:// references must look like runflow://assets/{uuid}", field)
        raw = source[len(prefix) :].strip("/")
        try:
            asset_id = str(uuid.UUID(raw))
        except ValueError:
            raise InvalidMediaError(f"asset reference {source[:80]!r} does not end in a uuid", field) from None
    else:
        asset_id = source[len("asset://") :].strip("/")
        if not _ASSET_ID.match(asset_id) or ".." in asset_id:
            raise InvalidMediaError(f"asset id {asset_id[:80]!r} is not valid (letters, digits, . _ -)", field)
    if asset_resolver is None:
        raise InvalidMediaError(
            "asset references need an asset store and none is configured here; "
            "pass an https:// URL, a data: URI or (CLI) a file path instead",
            field,
        )
    try:
        path = asset_resolver(asset_id)
    except (KeyError, LookupError, FileNotFoundError, ValueError) as exc:
        raise InvalidMediaError(f"unknown asset {asset_id!r} ({exc.__class__.__name__})", field) from None
    if path is None:
        raise InvalidMediaError(f"unknown asset {asset_id!r}", field)
    return _read_file(Path(path), limits, field=field, what=f"asset {asset_id!r}")


def read_local_file(source: str, limits: MediaLimits, *, base_dir: Path | None, field: str) -> bytes:
    """Read a local file (library/CLI only): refused unless ``limits.allow_local_paths``."""
    if not limits.allow_local_paths:
        raise InvalidMediaError(
            "local file paths are not accepted here; pass an https:// URL, a data:image/... URI "
            "or an asset reference (paths work only in the library and CLI)",
            field,
        )
    if source.lower().startswith("file://"):
        source = url2pathname(source[len("file://") :])
    path = Path(source)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return _read_file(path, limits, field=field, what=f"file {str(path)[:200]!r}")


def _read_file(path: Path, limits: MediaLimits, *, field: str, what: str) -> bytes:
    try:
        if not path.is_file():
            raise InvalidMediaError(f"{what} does not exist or is not a regular file", field)
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise InvalidMediaError(_too_many_bytes(size, limits), field)
        with path.open("rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise InvalidMediaError(f"could not read {what} ({exc.strerror or exc})", field) from None
    if len(data) > limits.max_bytes:  # grew between stat and read
        raise InvalidMediaError(_too_many_bytes(len(data), limits), field)
    return data


def fetch_url(
    url: str,
    limits: MediaLimits,
    *,
    field: str = "generated_image_url",
    resolver: Resolver | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> bytes:
    """GET an image over the SSRF guard: every hop checked, pinned, capped and timed.

    ``tls_context`` replaces the default trust store (certifi) — for a private CA or
    tests; certificates are always verified, against the URL's host name.
    """
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidMediaError(f"not a valid URL ({exc})", field) from None
    deadline = time.monotonic() + limits.fetch_timeout_s
    redirects = 0
    # trust_env=False: an HTTP(S)_PROXY from the environment would make the connection
    # for us and defeat the address check.
    verify: ssl.SSLContext | bool = tls_context if tls_context is not None else True
    with httpx.Client(trust_env=False, follow_redirects=False, verify=verify) as client:
        while True:
            try:
                ip = check_url(current, allow_loopback=limits.allow_loopback_urls, resolver=resolver)
            except UnsafeURLError as exc:
                raise UnsafeURLError(exc.reason, field) from None
            except FetchFailedError as exc:  # the name did not resolve: the network, not the input
                raise FetchFailedError(exc.reason, field) from None
            desc = _describe(current)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchFailedError(f"fetching {desc} timed out after {limits.fetch_timeout_s:g} s", field)
            target, headers, extensions = pinned_request(current, ip)
            headers.update(_FETCH_HEADERS)
            try:
                with client.stream(
                    "GET", target, headers=headers, extensions=extensions, timeout=httpx.Timeout(remaining)
                ) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("location")
                        if not location:
                            raise InvalidMediaError(f"{desc} answered a redirect without a Location", field)
                        redirects += 1
                        if redirects > limits.max_redirects:
                            raise InvalidMediaError(
                                f"too many redirects (more than {limits.max_redirects}) fetching the image", field
                            )
                        try:
                            current = current.join(location)
                        except (httpx.InvalidURL, ValueError) as exc:
                            raise InvalidMediaError(f"{desc} redirected to an invalid URL ({exc})", field) from None
                        logger.debug("redirect %d to %s", redirects, _describe(current))
                        continue
                    if resp.status_code >= 500:  # the server's trouble: retrying later may work
                        raise FetchFailedError(f"fetching {desc} failed: HTTP {resp.status_code}", field)
                    if resp.status_code != 200:
                        raise InvalidMediaError(f"fetching {desc} failed: HTTP {resp.status_code}", field)
                    return _read_body(resp, limits, deadline, desc, field)
            except httpx.TimeoutException:
                raise FetchFailedError(f"fetching {desc} timed out after {limits.fetch_timeout_s:g} s", field) from None
            except httpx.InvalidURL as exc:  # httpx builds the redirect target itself (a data: URI, say)
                raise InvalidMediaError(f"{desc} redirected to a URL that cannot be fetched ({exc})", field) from None
            except httpx.TransportError as exc:
                message = f"could not fetch {desc} ({exc.__class__.__name__}: {exc})"
                if _is_tls_refusal(exc):  # a certificate that does not verify: refused, not a network hiccup
                    raise InvalidMediaError(message, field) from None
                raise FetchFailedError(message, field) from None
            except (httpx.HTTPError, OSError, ValueError) as exc:  # httpx maps most; the rest is still bad media
                raise InvalidMediaError(f"could not fetch {desc} ({exc.__class__.__name__}: {exc})", field) from None


def _is_tls_refusal(exc: BaseException) -> bool:
    """True when a transport error is a TLS verification failure (the cause chain holds an ssl.SSLError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _read_body(resp: httpx.Response, limits: MediaLimits, deadline: float, desc: str, field: str) -> bytes:
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # we asked for identity; a compressed body could expand past the byte cap in one chunk
        raise InvalidMediaError(f"{desc} sent a {encoding}-compressed body; images must be sent uncompressed", field)
    declared = resp.headers.get("content-length")
    if declared and declared.strip().isdigit() and int(declared) > limits.max_bytes:
        raise InvalidMediaError(_too_many_bytes(int(declared), limits), field)
    buf = bytearray()
    for chunk in resp.iter_raw():
        buf += chunk
        if len(buf) > limits.max_bytes:
            raise InvalidMediaError(_too_many_bytes(len(buf), limits, at_least=True), field)
        if time.monotonic() > deadline:
            raise FetchFailedError(f"fetching {desc} timed out after {limits.fetch_timeout_s:g} s", field)
    return bytes(buf)


# ---------------------------------------------------------------- decoding
def sniff_format(data: bytes) -> str | None:
    """Name the image format from its magic bytes (to refuse unsupported ones by name)."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIC"
        return "MP4/ISO media"
    if head.startswith(b"\x00\x00\x00\x0cjP  ") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL "):
        return "JPEG XL"
    if head[:4] == b"8BPS":
        return "PSD"
    if head[:4] == b"qoif":
        return "QOI"
    if head[:4] == b"%PDF":
        return "PDF"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if head[:2] == b"BM":
        return "BMP"
    text = head.lstrip().lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None


def decode_image_bytes(
    data: bytes,
    limits: MediaLimits | None = None,
    *,
    source_kind: SourceKind = "data",
    field: str = "generated_image_url",
    declared_format: str | None = None,
) -> DecodedImage:
    """Decode encoded image bytes under ``limits`` into a ``DecodedImage`` (RGB)."""
    limits = limits or MediaLimits()
    if not data:
        raise InvalidMediaError("the image is empty (0 bytes)", field)
    if len(data) > limits.max_bytes:
        raise InvalidMediaError(_too_many_bytes(len(data), limits), field)
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed not in limits.allowed_formats:
        if sniffed == "HTML":
            raise InvalidMediaError(f"got an HTML page, not an image; {_use(limits)}", field)
        name = _DISPLAY.get(sniffed, sniffed)
        raise InvalidMediaError(_unsupported(name, limits), field)
    try:
        img = Image.open(io.BytesIO(data), formats=sorted(limits.allowed_formats))
    except UnidentifiedImageError:
        what = f"corrupt {_DISPLAY[sniffed]} data" if sniffed else "not a recognisable image"
        raise InvalidMediaError(f"{what}; {_use(limits)}", field) from None
    except Image.DecompressionBombError as exc:
        raise InvalidMediaError(f"image is too large to decode safely ({exc})", field) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is bad media, never a traceback
        logger.debug("open failed", exc_info=True)
        raise InvalidMediaError(f"could not read the image header ({exc.__class__.__name__}: {exc})", field) from None
    try:
        return _decode_opened(img, data, limits, source_kind=source_kind, field=field, declared=declared_format)
    finally:
        img.close()


def _decode_opened(
    img: Image.Image,
    data: bytes,
    limits: MediaLimits,
    *,
    source_kind: SourceKind,
    field: str,
    declared: str | None,
) -> DecodedImage:
    fmt = "JPEG" if img.format == "MPO" else (img.format or "?")  # MPO: a multi-picture camera JPEG
    if fmt not in limits.allowed_formats:
        raise InvalidMediaError(_unsupported(_DISPLAY.get(fmt, fmt), limits), field)
    if declared is not None and declared != fmt:
        raise InvalidMediaError(
            f"data URI says {_DISPLAY[declared]} but the data is {_DISPLAY.get(fmt, fmt)}; fix the media type", field
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidMediaError(f"image has no pixels ({width}x{height})", field)
    # Our cap, from the header, before a single pixel is decoded. Pillow's own guard
    # (MAX_IMAGE_PIXELS) already ran inside Image.open; ours is lower by default and
    # never allowed above Pillow's.
    cap = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS:
        cap = min(cap, int(Image.MAX_IMAGE_PIXELS))
    if width * height > cap:
        raise InvalidMediaError(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {cap:,} pixels", field
        )
    orientation = _orientation(img)
    transposed = orientation in (5, 6, 7, 8)
    original_size = (height, width) if transposed else (width, height)
    try:
        if limits.draft_size and fmt == "JPEG":
            want = limits.draft_size[::-1] if transposed else limits.draft_size
            img.draft("RGB", (int(want[0]), int(want[1])))
        img.load()
        img = ImageOps.exif_transpose(img) if orientation not in (None, 1) else img
        rgb = to_rgb(img, copy=True)  # a copy: the opened file object is closed after decoding
    except InvalidMediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidMediaError(f"image is too large to decode safely ({exc})", field) from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data of every kind
        logger.debug("decode failed", exc_info=True)
        raise InvalidMediaError(
            f"corrupt or truncated {_DISPLAY.get(fmt, fmt)} data ({exc.__class__.__name__}: {exc})", field
        ) from None
    return DecodedImage(
        image=rgb,
        key=hashlib.sha256(data).hexdigest(),
        original_size=original_size,
        format=fmt,
        source_kind=source_kind,
        n_bytes=len(data),
    )


def _orientation(img: Image.Image) -> int | None:
    """The EXIF orientation tag, or None when absent or unreadable (then we do not rotate)."""
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - broken EXIF: keep the pixels, skip the rotation
        logger.warning("unreadable EXIF block; orientation not applied")
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


# ---------------------------------------------------------------- messages
def _use(limits: MediaLimits) -> str:
    names = [_DISPLAY[f] for f in ("JPEG", "PNG", "WEBP") if f in limits.allowed_formats]
    return "use " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])


def _unsupported(name: str, limits: MediaLimits) -> str:
    return f"{name} is not supported; {_use(limits)}"


def _too_many_bytes(n: int, limits: MediaLimits, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"image is {more}{n:,} bytes; the limit is {limits.max_bytes:,} bytes"


def _describe(url: httpx.URL) -> str:
    host = url.host or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


__all__ = [
    "AssetResolver",
    "DecodedImage",
    "MediaLimits",
    "SUPPORTED_FORMATS",
    "classify_source",
    "decode_image_bytes",
    "fetch_url",
    "load_image",
    "load_request_images",
    "pinned_request",
    "read_asset",
    "read_data_uri",
    "read_local_file",
    "sniff_format",
]
