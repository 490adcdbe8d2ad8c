"""GPU JPEG decode in batch runs: the path is forced on the CPU with a stand-in tensor
decoder (torchvision's CPU ``decode_jpeg``), so every rule around it — the limits checked
before decoding, EXIF orientation, the per-image CPU fallback, which files go to the GPU,
the engine's wiring — is tested here; the ``gpu`` test runs the real nvJPEG path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagejury.batch.engine import BatchOptions, LocalBatch, comparable, image_decoder
from imagejury.batch.manifest import open_manifest
from imagejury.core.intake import gpu_decode
from imagejury.core.intake.gpu_decode import decode_image_bytes_on_device, device_jpeg_decoder
from imagejury.core.intake.media import MediaLimits, decode_image_bytes
from imagejury.core.pipeline import Evaluator
from imagejury.errors import InvalidMediaError
from tests.support import pipeline_judges as pj
from tests.test_batch_support import records, write_jsonl


class StandIn:
    """torchvision's CPU JPEG decode in place of nvJPEG, counting its calls."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, data: bytes, device: str) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg

        self.calls += 1
        if self.fail:
            raise RuntimeError("nvJPEG says no")
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _jpeg(w: int = 64, h: int = 40, orientation: int | None = None, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(w * h)
    grad = np.linspace(0, 255, w, dtype=np.float64)[None, :, None] + rng.normal(0, 8, (h, w, 3))
    img = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8), "RGB").convert(mode)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _same_pixels(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size and a.mode == b.mode == "RGB"
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize("orientation", [None, 3, 6, 8])
def test_gpu_path_gives_the_cpu_decode_upright(orientation):
    data = _jpeg(orientation=orientation)
    fake = StandIn()
    got = decode_image_bytes_on_device(data, MediaLimits(), source_kind="path", tensor_decoder=fake)
    want = decode_image_bytes(data, MediaLimits(), source_kind="path")
    assert fake.calls == 1
    assert got.image.size == want.image.size == ((40, 64) if orientation in (6, 8) else (64, 40))
    assert _same_pixels(got.image, want.image) < 1.0  # same libjpeg family; a wrong rotation is ~60
    assert (got.key, got.original_size, got.format, got.source_kind, got.n_bytes) == (
        want.key,
        want.original_size,
        want.format,
        want.source_kind,
        want.n_bytes,
    )


@pytest.mark.parametrize(
    "limits",
    [MediaLimits(max_pixels=64 * 40 - 1), MediaLimits(max_bytes=100), MediaLimits(allowed_formats=["PNG"])],
    ids=["pixel cap", "byte cap", "format not allowed"],
)
def test_limits_hold_before_any_gpu_decode(limits):
    data = _jpeg()
    fake = StandIn()
    with pytest.raises(InvalidMediaError) as gpu_err:
        decode_image_bytes_on_device(data, limits, tensor_decoder=fake)
    with pytest.raises(InvalidMediaError) as cpu_err:
        decode_image_bytes(data, limits)
    assert fake.calls == 0 and str(gpu_err.value) == str(cpu_err.value)


def test_a_gpu_failure_decodes_that_image_on_the_cpu():
    data = _jpeg(orientation=6)
    fake = StandIn(fail=True)
    got = decode_image_bytes_on_device(data, tensor_decoder=fake)
    assert fake.calls == 1
    assert _same_pixels(got.image, decode_image_bytes(data).image) == 0.0


def test_a_wrong_shape_from_the_gpu_is_not_trusted():
    data = _jpeg()
    got = decode_image_bytes_on_device(data, tensor_decoder=lambda d, dev: torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert got.image.size == (64, 40) and _same_pixels(got.image, decode_image_bytes(data).image) == 0.0


@pytest.mark.parametrize("kind", ["png", "cmyk", "draft", "declared png"])
def test_what_the_gpu_does_not_take_stays_on_the_cpu(kind):
    fake = StandIn()
    limits = MediaLimits(draft_size=(16, 16)) if kind == "draft" else MediaLimits()
    if kind == "png":
        buf = io.BytesIO()
        Image.new("RGB", (20, 10), (1, 2, 3)).save(buf, "PNG")
        data = buf.getvalue()
    else:
        data = _jpeg(mode="CMYK" if kind == "cmyk" else "RGB")
    declared = "PNG" if kind == "declared png" else None
    try:
        got = decode_image_bytes_on_device(data, limits, declared_format=declared, tensor_decoder=fake)
    except InvalidMediaError as exc:  # the declared type mismatch: the CPU path's own error
        with pytest.raises(InvalidMediaError, match=str(exc)[:20]):
            decode_image_bytes(data, limits, declared_format=declared)
    else:
        assert _same_pixels(got.image, decode_image_bytes(data, limits).image) == 0.0
    assert fake.calls == 0


def test_no_gpu_decoder_off_cuda(monkeypatch):
    assert device_jpeg_decoder("cpu") is None
    monkeypatch.setattr(gpu_decode.torch.cuda, "is_available", lambda: False)
    assert device_jpeg_decoder("cuda") is None


def _manifest(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    rows = []
    for i, orientation in enumerate([None, 6, 3]):
        (tmp_path / "img" / f"{i}.jpg").write_bytes(_jpeg(48 + 8 * i, 32, orientation))
        rows.append({"generated_image_url": f"img/{i}.jpg", "task_type": "image_generation", "client_ref": f"j{i}"})
    Image.new("RGB", (24, 24), (220, 10, 10)).save(tmp_path / "img" / "red.png")
    rows.append({"generated_image_url": "img/red.png", "task_type": "image_generation", "client_ref": "png"})
    return write_jsonl(tmp_path / "m.jsonl", rows)


def _batch(tmp_path: Path, out: str, device: str) -> tuple[LocalBatch, list[dict]]:
    cfg = pj.make_config(["t_redness", "t_gate"], batch_size=2)
    cfg.models.device = device
    batch = LocalBatch(
        Evaluator(cfg, judges=pj.make_registry()),
        open_manifest(tmp_path / "m.jsonl"),
        tmp_path / out,
        BatchOptions(batch_size=2, workers=2, progress=False),
    )
    batch.run()
    return batch, records(tmp_path / out)


def test_batch_engine_decodes_jpegs_on_the_device_when_it_is_cuda(tmp_path, monkeypatch):
    _manifest(tmp_path)
    cpu_batch, cpu_records = _batch(tmp_path, "cpu.jsonl", "cpu")
    assert cpu_batch.decoder is None

    fake = StandIn()
    monkeypatch.setattr(gpu_decode, "cuda_decode_available", lambda device: device.startswith("cuda"))
    monkeypatch.setattr(gpu_decode, "decode_jpeg_tensor", fake)
    gpu_batch, gpu_records = _batch(tmp_path, "gpu.jsonl", "cuda")
    assert gpu_batch.decoder is not None
    assert fake.calls == 3  # the three JPEGs; the PNG went to Pillow
    assert all(r["status"] == "completed" for r in gpu_records)
    by_row = lambda recs: {r["links"]["batch_row"]: comparable(r) for r in recs}  # noqa: E731
    assert by_row(gpu_records) == by_row(cpu_records)


def test_image_decoder_never_stops_a_run(monkeypatch):
    cfg = pj.make_config(["t_redness"])
    cfg.models.device = "cuda"

    def broken(device, tensor_decoder=None):
        raise RuntimeError("no driver")

    monkeypatch.setattr(gpu_decode, "device_jpeg_decoder", broken)
    assert image_decoder(Evaluator(cfg, judges=pj.make_registry())) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_decode_matches_pillow():
    decoder = device_jpeg_decoder("cuda")
    assert decoder is not None
    for orientation in (None, 6):
        data = _jpeg(640, 480, orientation)
        got, want = decoder(data, MediaLimits()), decode_image_bytes(data, MediaLimits())
        assert got.image.size == want.image.size
        assert _same_pixels(got.image, want.image) < 2.0  # nvJPEG's IDCT rounds a little differently
