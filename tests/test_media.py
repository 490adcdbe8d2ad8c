"""Media intake: formats, limits, orientation, alpha, every source kind, and the SSRF guard.

Network traffic in these tests goes to 127.0.0.1 only; a guard fixture fails any test
that tries to connect anywhere else, which is how "refused before connecting" is shown.
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import ssl
import struct
import threading
import uuid
import warnings
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFile

from imagejury.core.intake import netguard
from imagejury.core.intake.media import (
    DecodedImage,
    MediaLimits,
    classify_source,
    decode_image_bytes,
    fetch_url,
    load_image,
    load_request_images,
    sniff_format,
)
from imagejury.core.intake.netguard import pinned_request
from imagejury.errors import FetchFailedError, InvalidMediaError, UnsafeURLError


# ---------------------------------------------------------------- helpers
def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 1-bit pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _chunk(b"IEND", b"")
    )


PNG = encode(noise(), "PNG")


@pytest.fixture()
def no_remote_connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail loudly if anything connects to a non-loopback address; record every attempt."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        attempts.append(address)
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not netguard.is_loopback_address(host):
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


# ---------------------------------------------------------------- local HTTP server
class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, object] = {}
    seen_hosts: list[str] = []
    release = threading.Event()

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen_hosts.append(self.headers.get("Host", ""))
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route(self)  # type: ignore[operator]


def _send(
    h: BaseHTTPRequestHandler, body: bytes, *, length: bool = True, headers: dict[str, str] | None = None
) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    if length:
        h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _redirect(location: str):  # noqa: ANN202
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    big = encode(noise((256, 256), seed=3), "PNG")

    def slow(h: BaseHTTPRequestHandler) -> None:
        _Handler.release.wait(5)

    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()
        for _ in range(40):
            if _Handler.release.wait(0.1):
                return
            try:
                h.wfile.write(b"\x89")
                h.wfile.flush()
            except OSError:
                return

    def gzipped(h: BaseHTTPRequestHandler) -> None:
        _send(h, PNG, headers={"Content-Encoding": "gzip"})

    def huge_declared(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**9))
        h.end_headers()
        h.wfile.write(PNG)

    _Handler.routes = {
        "/ok.png": lambda h: _send(h, PNG),
        "/big.png": lambda h: _send(h, big),
        "/big-nolength.png": lambda h: _send(h, big, length=False),
        "/huge-declared.png": huge_declared,
        "/gif": lambda h: _send(h, encode(noise(), "GIF")),
        "/html": lambda h: _send(h, b"<!DOCTYPE html><html><body>hi</body></html>"),
        "/gzip": gzipped,
        "/slow": slow,
        "/unavailable": lambda h: (h.send_response(503), h.send_header("Content-Length", "0"), h.end_headers()),
        "/trickle": trickle,
        "/to-private": _redirect("https://10.0.0.1/secret.png"),
        "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-mapped": _redirect("https://[::ffff:10.0.0.1]/x.png"),
        "/to-file": _redirect("file:///etc/passwd"),
        "/no-location": lambda h: (h.send_response(302), h.send_header("Content-Length", "0"), h.end_headers()),
        "/chain/0": lambda h: _send(h, PNG),
    }
    for n in range(1, 6):
        _Handler.routes[f"/chain/{n}"] = _redirect(f"/chain/{n - 1}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield base
    _Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


LOOP = MediaLimits(allow_loopback_urls=True, fetch_timeout_s=5.0)


# ---------------------------------------------------------------- formats
@pytest.mark.parametrize(("fmt", "kw"), [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"quality": 90})])
def test_supported_formats_decode(fmt: str, kw: dict) -> None:
    data = encode(noise(), fmt, **kw)
    out = decode_image_bytes(data, MediaLimits(), source_kind="data")
    assert isinstance(out, DecodedImage)
    assert out.format == fmt and out.image.mode == "RGB" and out.image.size == (64, 48)
    assert out.original_size == (64, 48) and out.n_bytes == len(data)
    assert out.key == hashlib.sha256(data).hexdigest()
    out.image.load()  # usable after intake closed the source file


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("ICO", "ICO")])
def test_other_formats_are_refused_by_name(fmt: str, name: str) -> None:
    data = encode(noise((32, 32)), fmt)
    with pytest.raises(InvalidMediaError) as err:
        decode_image_bytes(data)
    assert err.value.failure_code == "invalid_media"
    assert err.value.detail == f"generated_image_url: {name} is not supported; use JPEG, PNG or WebP"


def test_allowed_formats_can_be_narrowed() -> None:
    limits = MediaLimits(allowed_formats={"png"})
    with pytest.raises(InvalidMediaError, match="JPEG is not supported; use PNG"):
        decode_image_bytes(encode(noise(), "JPEG"), limits)
    with pytest.raises(ValueError):
        MediaLimits(allowed_formats={"GIF"})


def test_random_bytes_are_not_an_image() -> None:
    with pytest.raises(InvalidMediaError, match="not a recognisable image; use JPEG, PNG or WebP"):
        decode_image_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(InvalidMediaError, match="got an HTML page"):
        decode_image_bytes(b"<!DOCTYPE html><html></html>")
    with pytest.raises(InvalidMediaError, match="empty"):
        decode_image_bytes(b"")


def test_corrupt_data_with_a_valid_magic() -> None:
    with pytest.raises(InvalidMediaError, match="corrupt PNG data"):
        decode_image_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    jpeg = bytearray(encode(noise((128, 128)), "JPEG"))
    jpeg[200:1200] = b"\xff" * 1000  # wreck the entropy-coded data and markers
    with pytest.raises(InvalidMediaError, match="corrupt"):
        decode_image_bytes(bytes(jpeg))


def test_truncated_jpeg_and_png() -> None:
    jpeg = encode(noise((256, 256)), "JPEG", quality=95)
    with pytest.raises(InvalidMediaError, match=r"corrupt or truncated JPEG data .*truncated"):
        decode_image_bytes(jpeg[: len(jpeg) // 2])
    png = encode(noise((256, 256)), "PNG")
    with pytest.raises(InvalidMediaError, match="corrupt or truncated PNG data"):
        decode_image_bytes(png[: len(png) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


# ---------------------------------------------------------------- pixel and byte caps
@pytest.fixture()
def decode_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every pixel decode (ImageFile.load) so a test can show none happened."""
    calls: list[str] = []
    real = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):  # noqa: ANN202
        calls.append(self.format or "?")
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_a_100_megapixel_bomb_is_refused_before_decoding(decode_spy: list[str]) -> None:
    bomb = png_header_only(10_000, 10_000)
    assert len(bomb) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow's own guard also speaks
        with pytest.raises(InvalidMediaError, match=r"10000x10000 = 100,000,000 pixels; the limit is 40,000,000"):
            decode_image_bytes(bomb)
    assert decode_spy == []


def test_pillows_own_bomb_error_is_invalid_media(decode_spy: list[str]) -> None:
    with pytest.raises(InvalidMediaError, match="too large to decode safely"):
        decode_image_bytes(png_header_only(30_000, 30_000))  # 900 MP: Pillow raises at open
    assert decode_spy == []


def test_our_cap_is_below_pillows(decode_spy: list[str]) -> None:
    # 48 MP: Pillow would decode it without a word; our 40 MP default refuses it
    assert Image.MAX_IMAGE_PIXELS > 8000 * 6000
    with pytest.raises(InvalidMediaError, match="8000x6000"):
        decode_image_bytes(png_header_only(8000, 6000))
    assert decode_spy == []


def test_pixel_cap_is_configurable() -> None:
    img = encode(noise((20, 20)), "PNG")
    with pytest.raises(InvalidMediaError, match="20x20 = 400 pixels; the limit is 399 pixels"):
        decode_image_bytes(img, MediaLimits(max_pixels=399))
    assert decode_image_bytes(img, MediaLimits(max_pixels=400)).image.size == (20, 20)


def test_byte_cap_on_bytes_data_and_paths(tmp_path: Path) -> None:
    limits = MediaLimits(max_bytes=len(PNG) - 1, allow_local_paths=True)
    with pytest.raises(InvalidMediaError, match="the limit is"):
        decode_image_bytes(PNG, limits)
    with pytest.raises(InvalidMediaError, match="the limit is"):
        load_image(data_uri(PNG), limits)
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(InvalidMediaError, match="the limit is"):
        load_image("a.png", limits, base_dir=tmp_path)
    ok = MediaLimits(max_bytes=len(PNG), allow_local_paths=True)
    assert load_image("a.png", ok, base_dir=tmp_path).source_kind == "path"


def test_huge_data_uri_is_refused_before_decoding_base64() -> None:
    payload = "A" * 4_000_000
    with pytest.raises(InvalidMediaError, match="the limit is 1,000 bytes"):
        load_image("data:image/png;base64," + payload, MediaLimits(max_bytes=1000))


# ---------------------------------------------------------------- orientation, modes, alpha, draft
def _two_halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr, "RGB")


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be rotated 90 degrees clockwise for display
    data = encode(_two_halves((80, 40)), "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image_bytes(data)
    assert out.image.size == (40, 80) and out.original_size == (40, 80)
    top, bottom = out.image.getpixel((20, 5)), out.image.getpixel((20, 75))
    assert top[0] > 200 and top[2] < 60, top  # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_broken_orientation_values_are_ignored() -> None:
    exif = Image.Exif()
    exif[0x0112] = 42
    out = decode_image_bytes(encode(_two_halves((80, 40)), "JPEG", exif=exif.tobytes()))
    assert out.image.size == (80, 40)


def test_jpeg_draft_decodes_smaller_but_keeps_the_original_size() -> None:
    data = encode(noise((800, 600)), "JPEG")
    out = decode_image_bytes(data, MediaLimits(draft_size=(200, 150)))
    assert out.original_size == (800, 600)
    assert out.image.size[0] < 800 and out.image.size[0] >= 200 and out.image.size[1] >= 150
    png = decode_image_bytes(encode(noise((800, 600)), "PNG"), MediaLimits(draft_size=(200, 150)))
    assert png.image.size == (800, 600)  # draft is a JPEG feature; others decode in full


def test_draft_follows_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(noise((800, 400)), "JPEG", exif=exif.tobytes())
    out = decode_image_bytes(data, MediaLimits(draft_size=(100, 200)))
    assert out.original_size == (400, 800)
    w, h = out.image.size
    assert h > w and w >= 100 and h >= 200 and h < 800


@pytest.mark.parametrize(
    ("mode", "color"),
    [("RGBA", (0, 0, 0, 0)), ("LA", (0, 0)), ("RGBA", (10, 200, 30, 0))],
)
def test_fully_transparent_pixels_become_white(mode: str, color: tuple) -> None:
    out = decode_image_bytes(encode(Image.new(mode, (16, 16), color), "PNG"))
    assert out.image.mode == "RGB" and out.image.getpixel((3, 3)) == (255, 255, 255)


def test_partial_alpha_is_composited_on_white() -> None:
    out = decode_image_bytes(encode(Image.new("RGBA", (8, 8), (255, 0, 0, 128)), "PNG"))
    r, g, b = out.image.getpixel((0, 0))
    assert r == 255 and 120 <= g <= 135 and g == b


def test_webp_alpha_is_composited() -> None:
    out = decode_image_bytes(encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "WEBP", lossless=True))
    assert out.image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_index() -> None:
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    pal.putpixel((0, 0), 0)
    out = decode_image_bytes(encode(pal, "PNG", transparency=0))
    assert out.image.getpixel((0, 0)) == (255, 255, 255)  # index 0 is transparent
    assert out.image.getpixel((4, 4)) == (0, 255, 0)


def test_other_modes_become_rgb() -> None:
    grey16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    out = decode_image_bytes(encode(grey16, "PNG"))
    assert out.image.mode == "RGB"
    assert out.image.getpixel((0, 10)) == (40, 40, 40)  # 10240 / 257 -> 40: scaled, not clipped
    assert out.image.getpixel((63, 63)) == (255, 255, 255)
    cmyk = decode_image_bytes(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    r, g, b = cmyk.image.getpixel((2, 2))
    assert cmyk.image.mode == "RGB" and r > 200 and g < 60 and b < 60
    one_bit = decode_image_bytes(encode(Image.new("1", (8, 8), 1), "PNG"))
    assert one_bit.image.getpixel((0, 0)) == (255, 255, 255)


# ---------------------------------------------------------------- data URIs
def test_data_uri_ok() -> None:
    jpeg = encode(noise(), "JPEG")
    out = load_image(data_uri(jpeg, "image/jpeg"))
    assert out.source_kind == "data" and out.format == "JPEG" and out.key == hashlib.sha256(jpeg).hexdigest()
    assert load_image(data_uri(PNG, "IMAGE/PNG")).format == "PNG"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("data:image/png;base64,iVBOR!!!", "not valid base64"),
        ("data:image/png;base64,iVBORw0KGgo", "not valid base64"),  # bad padding
        ("data:image/png;base64," + base64.urlsafe_b64encode(b"\xfb\xff" * 30).decode(), "not valid base64"),
        ("data:image/png;base64,", "no data"),
        ("data:image/png," + "%89PNG", "must be base64"),
        ("data:;base64,AAAA", "no media type"),
        ("data:text/plain;base64,AAAA", "'text/plain' is not a supported image type"),
        ("data:image/gif;base64,R0lGODlh", "GIF is not supported; use JPEG, PNG or WebP"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "SVG is not supported"),
        ("data:image/png;base64", "malformed data URI"),
    ],
)
def test_bad_data_uris(uri: str, message: str) -> None:
    with pytest.raises(InvalidMediaError, match=message):
        load_image(uri, field="reference_images[1].url")


def test_data_uri_mime_must_match_the_data() -> None:
    with pytest.raises(InvalidMediaError, match="data URI says PNG but the data is JPEG"):
        load_image(data_uri(encode(noise(), "JPEG"), "image/png"))
    with pytest.raises(InvalidMediaError, match="GIF is not supported"):  # named by the bytes too
        load_image(data_uri(encode(noise(), "GIF"), "image/png"))


def test_field_name_is_in_the_detail() -> None:
    with pytest.raises(InvalidMediaError) as err:
        load_image("data:image/png;base64,@@@@", field="reference_images[2].url")
    assert err.value.detail.startswith("reference_images[2].url: ") and err.value.field == "reference_images[2].url"


# ---------------------------------------------------------------- local paths and assets
def test_local_paths_are_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    for ref in (str(path), "img.png", f"file://{path}"):
        with pytest.raises(InvalidMediaError, match="local file paths are not accepted here"):
            load_image(ref, MediaLimits(), base_dir=tmp_path)
    allowed = MediaLimits(allow_local_paths=True)
    assert load_image(str(path), allowed).source_kind == "path"
    assert load_image("img.png", allowed, base_dir=tmp_path).image.size == (64, 48)
    assert load_image(f"file://{path}", allowed).format == "PNG"
    with pytest.raises(InvalidMediaError, match="does not exist"):
        load_image("missing.png", allowed, base_dir=tmp_path)
    with pytest.raises(InvalidMediaError, match="not a regular file"):
        load_image(str(tmp_path), allowed)


def test_asset_references(tmp_path: Path) -> None:
    asset_id = str(uuid.uuid4())
    (tmp_path / asset_id).write_bytes(PNG)
    (tmp_path / "hero-1.png").write_bytes(PNG)
    asked: list[str] = []

    def resolver(ref: str) -> Path:
        asked.append(ref)
        path = tmp_path / ref
        if not path.exists():
            raise KeyError(ref)
        return path

    assert load_image(f"runflow://assets/{asset_id}", asset_resolver=resolver).source_kind == "asset"
    assert load_image("asset://hero-1.png", asset_resolver=resolver).format == "PNG"
    assert asked == [asset_id, "hero-1.png"]
    with pytest.raises(InvalidMediaError, match="unknown asset"):
        load_image(f"runflow://assets/{uuid.uuid4()}", asset_resolver=resolver)
    with pytest.raises(InvalidMediaError, match="does not end in a uuid"):
        load_image("runflow://assets/not-a-uuid", asset_resolver=resolver)
    with pytest.raises(InvalidMediaError, match="runflow://assets/"):
        load_image(f"runflow://runs/{asset_id}", asset_resolver=resolver)
    with pytest.raises(InvalidMediaError, match="not valid"):
        load_image("asset://../../etc/passwd", asset_resolver=resolver)
    with pytest.raises(InvalidMediaError, match="need an asset store"):
        load_image(f"runflow://assets/{asset_id}")
    # asset files obey the byte cap like everything else
    with pytest.raises(InvalidMediaError, match="the limit is"):
        load_image("asset://hero-1.png", MediaLimits(max_bytes=10), asset_resolver=resolver)


def test_classify_source() -> None:
    assert classify_source("https://x.example/a.png") == "url"
    assert classify_source("HTTP://x.example/a.png") == "url"
    assert classify_source("data:image/png;base64,AA") == "data"
    assert classify_source("runflow://assets/1") == "asset"
    assert classify_source("asset://a") == "asset"
    assert classify_source("/tmp/a.png") == "path"
    assert classify_source("images/a.png") == "path"
    assert classify_source("file:///tmp/a.png") == "path"
    assert classify_source("ftp://x/a.png") == "url"  # then refused by scheme


def test_empty_source() -> None:
    with pytest.raises(InvalidMediaError, match="no image given"):
        load_image("  ")


# ---------------------------------------------------------------- SSRF guard (no traffic leaves loopback)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "https://127.0.0.1/a.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/a.png",
        "https://192.168.1.1/a.png",
        "https://172.16.0.1/a.png",
        "https://100.64.0.1/a.png",
        "https://0.0.0.0/a.png",
        "https://224.0.0.1/a.png",
        "https://[::ffff:127.0.0.1]/a.png",
        "https://[::ffff:169.254.169.254]/a.png",
        "https://[::1]/a.png",
        "https://[fe80::1]/a.png",
        "https://[fd00::1]/a.png",
        "https://[2002:a00:1::]/a.png",  # 6to4 wrapping 10.0.0.1
        "https://[64:ff9b::a9fe:a9fe]/a.png",  # NAT64 wrapping 169.254.169.254
        "https://localhost/a.png",
        "https://2130706433/a.png",  # 127.0.0.1 as one decimal number
        "https://0x7f.1/a.png",
    ],
)
def test_non_global_addresses_are_refused_without_connecting(url: str, no_remote_connections: list[object]) -> None:
    with pytest.raises(UnsafeURLError) as err:
        load_image(url, MediaLimits())
    assert err.value.failure_code == "invalid_media"
    if url.startswith(("https://2130706433", "https://0x7f.1")):
        # numeric forms: glibc resolves them to 127.0.0.1; a resolver that does not is also a refusal
        assert "not a public address" in err.value.detail or "could not be resolved" in err.value.detail
    else:
        assert err.value.detail.startswith("generated_image_url: refused to fetch")
        assert "not a public address" in err.value.detail
    assert no_remote_connections == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://8.8.8.8/a.png", "plain http:// is not allowed"),
        ("ftp://8.8.8.8/a.png", "scheme 'ftp' is not allowed"),
        ("https://user:pw@8.8.8.8/a.png", "credentials"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher'"),
    ],
)
def test_bad_url_forms_are_refused_without_connecting(
    url: str, message: str, no_remote_connections: list[object]
) -> None:
    with pytest.raises(UnsafeURLError, match=message):
        load_image(url, MediaLimits(allow_loopback_urls=True))
    assert no_remote_connections == []


def test_a_name_with_any_private_address_is_refused(no_remote_connections: list[object]) -> None:
    def resolver(host: str, port: int) -> list[str]:
        return {"mixed.test": ["8.8.8.8", "10.1.2.3"], "rebind.test": ["169.254.169.254"]}[host]

    for url in ("https://mixed.test/a.png", "https://rebind.test/a.png"):
        with pytest.raises(UnsafeURLError, match="not a public address"):
            load_image(url, MediaLimits(), resolver=resolver)
    assert no_remote_connections == []


def test_an_unresolvable_host_is_a_fetch_failure_not_bad_media(
    monkeypatch: pytest.MonkeyPatch, no_remote_connections: list[object]
) -> None:
    # offline / DNS down: the system resolver fails; that is the network, not the caller's input
    def no_dns(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(FetchFailedError, match="could not be resolved") as err:
        load_image("https://nowhere.test/a.png")
    assert err.value.failure_code == "fetch_failed"
    assert not err.value.is_bad_input
    assert err.value.detail.startswith("generated_image_url: ")


def test_loopback_flag_admits_loopback_only(server: str, no_remote_connections: list[object]) -> None:
    out = load_image(f"{server}/ok.png", LOOP)
    assert out.source_kind == "url" and out.format == "PNG" and out.key == hashlib.sha256(PNG).hexdigest()
    with pytest.raises(UnsafeURLError):
        load_image(f"{server}/ok.png", MediaLimits())  # without the flag: refused


@pytest.mark.parametrize("path", ["/to-private", "/to-metadata", "/to-mapped"])
def test_redirect_to_a_private_address_is_refused_before_connecting(
    server: str, path: str, no_remote_connections: list[object]
) -> None:
    with pytest.raises(UnsafeURLError, match="not a public address"):
        load_image(f"{server}{path}", LOOP)
    assert all(netguard.is_loopback_address(a[0]) for a in no_remote_connections)  # type: ignore[index]


def test_redirect_to_another_scheme_is_refused(server: str, no_remote_connections: list[object]) -> None:
    with pytest.raises(UnsafeURLError, match="scheme 'file'"):
        load_image(f"{server}/to-file", LOOP)
    with pytest.raises(InvalidMediaError, match="without a Location"):
        load_image(f"{server}/no-location", LOOP)


def test_redirects_at_most_three(server: str, no_remote_connections: list[object]) -> None:
    assert load_image(f"{server}/chain/3", LOOP).format == "PNG"
    with pytest.raises(InvalidMediaError, match=r"too many redirects \(more than 3\)"):
        load_image(f"{server}/chain/4", LOOP)
    with pytest.raises(InvalidMediaError, match="too many redirects"):
        load_image(f"{server}/chain/1", MediaLimits(allow_loopback_urls=True, max_redirects=0))


def test_connection_is_pinned_to_the_checked_address(server: str, no_remote_connections: list[object]) -> None:
    """The name is resolved once (by us) and the connection goes to that IP with Host set."""
    port = server.rsplit(":", 1)[1]
    lookups: list[str] = []

    def resolver(host: str, p: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    _Handler.seen_hosts.clear()
    out = load_image(f"http://images.test:{port}/ok.png", LOOP, resolver=resolver)
    assert out.format == "PNG"
    assert lookups == ["images.test"]  # httpx never resolved images.test itself (it could not)
    assert _Handler.seen_hosts == [f"images.test:{port}"]


def test_pinned_request_keeps_name_for_host_header_and_tls() -> None:
    url, headers, ext = pinned_request(httpx.URL("https://images.example.com/a/b.png?x=1#f"), "93.184.216.34")
    assert str(url) == "https://93.184.216.34/a/b.png?x=1"
    assert headers == {"Host": "images.example.com"}
    assert ext == {"sni_hostname": "images.example.com"}
    url6, headers6, ext6 = pinned_request(httpx.URL("https://cdn.example.com:8443/a.png"), "2606:2800:220:1::1")
    assert str(url6) == "https://[2606:2800:220:1::1]:8443/a.png" and headers6["Host"] == "cdn.example.com:8443"
    literal, _, ext_literal = pinned_request(httpx.URL("https://93.184.216.34/a.png"), "93.184.216.34")
    assert ext_literal == {}
    _, _, ext_v6 = pinned_request(httpx.URL("https://[::ffff:5db8:d822]/a.png"), "::ffff:93.184.216.34")
    assert ext_v6 == {}


def test_byte_cap_holds_whatever_the_server_claims(server: str) -> None:
    small = MediaLimits(allow_loopback_urls=True, max_bytes=50_000)
    for path in ("/big.png", "/big-nolength.png", "/huge-declared.png"):
        with pytest.raises(InvalidMediaError, match="the limit is 50,000 bytes"):
            load_image(f"{server}{path}", small)
    assert load_image(f"{server}/big.png", LOOP).image.size == (256, 256)
    assert load_image(f"{server}/big-nolength.png", LOOP).image.size == (256, 256)


def test_http_errors_and_wrong_content(server: str) -> None:
    with pytest.raises(InvalidMediaError, match="HTTP 404"):
        load_image(f"{server}/missing.png", LOOP)
    with pytest.raises(InvalidMediaError, match="GIF is not supported"):
        load_image(f"{server}/gif", LOOP)
    with pytest.raises(InvalidMediaError, match="HTML page"):
        load_image(f"{server}/html", LOOP)
    with pytest.raises(InvalidMediaError, match="gzip-compressed"):
        load_image(f"{server}/gzip", LOOP)


def test_a_server_error_is_a_fetch_failure_and_a_404_is_bad_media(server: str) -> None:
    with pytest.raises(FetchFailedError, match="HTTP 503"):
        load_image(f"{server}/unavailable", LOOP)
    with pytest.raises(InvalidMediaError, match="HTTP 404") as err:
        load_image(f"{server}/missing.png", LOOP)
    assert err.value.failure_code == "invalid_media"


def test_fetch_times_out(server: str) -> None:
    quick = MediaLimits(allow_loopback_urls=True, fetch_timeout_s=0.3)
    with pytest.raises(FetchFailedError, match=r"timed out after 0.3 s"):
        load_image(f"{server}/slow", quick)


def test_a_trickling_server_hits_the_overall_deadline(server: str) -> None:
    # each byte arrives well within the per-read timeout; only the total deadline stops it
    quick = MediaLimits(allow_loopback_urls=True, fetch_timeout_s=0.5)
    with pytest.raises(FetchFailedError, match="timed out"):
        load_image(f"{server}/trickle", quick)


def test_connection_refused_is_a_fetch_failure() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchFailedError, match="could not fetch") as err:
        load_image(f"http://127.0.0.1:{port}/a.png", LOOP)
    assert err.value.failure_code == "fetch_failed"


# ---------------------------------------------------------------- netguard units
@pytest.mark.parametrize(
    ("ip", "is_global"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("127.1.2.3", False),
        ("10.255.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("239.1.1.1", False),
        ("240.0.0.1", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::", False),
        ("::1", False),
        ("::127.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b:1::1", False),
        ("not an ip", False),
    ],
)
def test_is_global_address(ip: str, is_global: bool) -> None:
    assert netguard.is_global_address(ip) is is_global


def test_check_url_returns_the_ip_to_connect_to() -> None:
    assert netguard.check_url("https://8.8.8.8/x") == "8.8.8.8"
    assert netguard.check_url("https://dns.test/x", resolver=lambda h, p: ["1.1.1.1"]) == "1.1.1.1"
    assert netguard.check_url("http://localhost:9/x", allow_loopback=True) in ("127.0.0.1", "::1")


def test_validate_callback_url() -> None:
    assert netguard.validate_callback_url("https://hooks.example.com/a") == "https://hooks.example.com/a"
    for bad in ("http://hooks.example.com/a", "https://10.0.0.1/a", "https://localhost/a", "https://u:p@h.example/"):
        with pytest.raises(ValueError):
            netguard.validate_callback_url(bad)
    assert netguard.validate_callback_url("http://127.0.0.1:5/a", allow_loopback=True)
    with pytest.raises(ValueError):
        netguard.validate_callback_url("https://192.168.0.2/a", allow_loopback=True)


def test_sniff_format() -> None:
    assert sniff_format(encode(noise(), "JPEG")) == "JPEG"
    assert sniff_format(encode(noise(), "WEBP")) == "WEBP"
    assert sniff_format(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 20) == "AVIF"
    assert sniff_format(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20) == "HEIC"
    assert sniff_format(b"  <svg xmlns='http://www.w3.org/2000/svg'/>") == "SVG"
    assert sniff_format(b"hello") is None


def test_heic_and_avif_are_refused_by_name() -> None:
    with pytest.raises(InvalidMediaError, match="HEIC is not supported; use JPEG, PNG or WebP"):
        decode_image_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    with pytest.raises(InvalidMediaError, match="AVIF is not supported"):
        decode_image_bytes(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64)


# ---------------------------------------------------------------- TLS: pinned IP, verified name
# A throwaway CA and a certificate for "images.test" (EC P-256, valid 2000-2100), made
# with openssl for these tests only; the key protects nothing.
TEST_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBazCCARGgAwIBAgIBATAKBggqhkjOPQQDAjAcMRowGAYDVQQDDBFpbWFnZWp1
cnkgdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowHDEa
MBgGA1UEAwwRaW1hZ2VqdXJ5IHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAAThE7TSSwY5hy73wR35QnQXLlNBWr3LmWe6wFMpMWis7H0r9OeSkaYtm7Qv
mfwNXAQ0EsWs2y2rc9wo+HOmZ5klo0IwQDAPBgNVHRMBAf8EBTADAQH/MA4GA1Ud
DwEB/wQEAwICBDAdBgNVHQ4EFgQUAXSlQBEU5vDj0w6l5obrIDconuIwCgYIKoZI
zj0EAwIDSAAwRQIhAJ6cas4Hzml2JNiJVvIk1vN1OrtoneVK2p8z6ysQrOUhAiBV
xvca8fnKrxUG8SnJqL+Hle3hOpl+EROvEVK7EH5NYA==
-----END CERTIFICATE-----
"""
TEST_SERVER_PEM = """-----BEGIN CERTIFICATE-----
MIIBnjCCAUOgAwIBAgIBAjAKBggqhkjOPQQDAjAcMRowGAYDVQQDDBFpbWFnZWp1
cnkgdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowFjEU
MBIGA1UEAwwLaW1hZ2VzLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASP
qS1mFbtXmTqfae5q/yPbiPCO4q+NWksC20U4MQGaDrgFXeYOEMJ3xbOsa2cJU5B3
6Iv+AddQn/89PwDOjBCao3oweDAJBgNVHRMEAjAAMBYGA1UdEQQPMA2CC2ltYWdl
cy50ZXN0MBMGA1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBS+i4vtYgrvoI1p
M8+V70GryP56EDAfBgNVHSMEGDAWgBQBdKVAERTm8OPTDqXmhusgNyie4jAKBggq
hkjOPQQDAgNJADBGAiEAnrWU3xJlKXYdcI20tf/ZTY9jHdeL0UiRyx20nQ1X8moC
IQC3PWfCgAVKbWgORMvc2QI3TzerQFyaG/OFZ5ek1IoSyg==
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgscqVYlgS4S/dDjYU
4/0q+oULko6qrSPSXPbG5i46EeahRANCAASPqS1mFbtXmTqfae5q/yPbiPCO4q+N
WksC20U4MQGaDrgFXeYOEMJ3xbOsa2cJU5B36Iv+AddQn/89PwDOjBCa
-----END PRIVATE KEY-----
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[str]]]:
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    pem.write_text(TEST_SERVER_PEM)
    names: list[str] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    ctx.sni_callback = lambda sock, name, _ctx: names.append(name or "")  # type: ignore[assignment,func-returns-value]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], names
    httpd.shutdown()
    httpd.server_close()


def _trust_test_ca() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=TEST_CA_PEM)
    return ctx


def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_https_connects_to_the_checked_ip_and_verifies_the_name(
    server: str, tls_server: tuple[int, list[str]], no_remote_connections: list[object]
) -> None:
    port, sni_names = tls_server
    data = fetch_url(f"https://images.test:{port}/ok.png", LOOP, resolver=_to_loopback, tls_context=_trust_test_ca())
    assert data == PNG
    assert sni_names[-1] == "images.test"  # TLS spoke the name while the socket went to 127.0.0.1


def test_https_certificate_for_another_name_is_refused(server: str, tls_server: tuple[int, list[str]]) -> None:
    port, _ = tls_server
    with pytest.raises(InvalidMediaError, match="could not fetch .*CERTIFICATE_VERIFY_FAILED"):
        fetch_url(f"https://other.test:{port}/ok.png", LOOP, resolver=_to_loopback, tls_context=_trust_test_ca())
    with pytest.raises(
        InvalidMediaError, match="CERTIFICATE_VERIFY_FAILED"
    ):  # untrusted CA with the default trust store
        fetch_url(f"https://images.test:{port}/ok.png", LOOP, resolver=_to_loopback)


# ---------------------------------------------------------------- a whole request
def test_load_request_images_names_the_failing_field() -> None:
    from imagejury.core.schema import parse_request

    good = data_uri(PNG)
    req = parse_request(
        {
            "generated_image_url": good,
            "task_type": "headshot",
            "reference_images": [{"url": good}, {"url": data_uri(encode(noise(), "GIF"), "image/gif")}],
        }
    )
    with pytest.raises(InvalidMediaError) as err:
        load_request_images(req)
    assert err.value.field == "reference_images[1].url"
    assert err.value.detail == "reference_images[1].url: GIF is not supported; use JPEG, PNG or WebP"
    ok = parse_request(
        {"generated_image_url": good, "task_type": "t", "reference_images": [{"url": good, "kind": "garment"}]}
    )
    generated, refs = load_request_images(ok)
    assert refs[0] is generated  # the same string is decoded once
