"""Build a tiny insightface-convention model pack, offline, for tests.

The pack follows insightface's layout so that the real loading code
(``imagejury.models.face.insightface_backend.load_insightface`` → insightface's ``model_zoo``) runs on it:

- ``det_tiny.onnx`` — an SCRFD-layout detector: one input ``1x3xHxW`` (dynamic H, W),
  nine outputs in SCRFD's order ``score_8, score_16, score_32, bbox_8, …, kps_32``
  with shapes ``(H/s*W/s*2, 1|4|10)`` (2 anchors per location, rank 2 — "not batched"
  in ``SCRFD._init_vars``). It has no learned weights: it is a matched filter that finds a
  bright ``FACE_SIZE`` square on a dark background, so a test knows where the face is.
  Only the stride-8 head and its first anchor ever fire; the box it reports is the
  ``FACE_SIZE`` square centred on the anchor, with five face-like keypoints inside.
- ``rec_tiny.onnx`` — an ArcFace-layout recognizer: input ``Nx3x112x112`` with a dynamic
  batch axis, one output ``(N, EMBED_DIM)``; random but fixed (seeded numpy) weights.
  ``fixed_batch=True`` exports it with the batch fixed at 1 (as many published packs are).
- ``manifest.json`` — roles declared, in insightface's own model-package manifest V2
  (``manifest_version: 2``; it also needs ``MODEL.LICENSE``) or in imagejury's small
  ``roles`` format; or no manifest at all, to exercise insightface's legacy routing.

All coordinates are in the detector's input frame (after insightface resizes the image
to ``det_size``); with ``det_size`` equal to the image size they are image pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FACE_SIZE = 64  # side of the square the detector finds, in detector-input pixels
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
EMBED_DIM = 64
REC_SIZE = 112
# Keypoints of the detected square, relative to its centre (x, y), image-left eye first:
# insightface's ArcFace template (utils/face_align.py ``arcface_dst``) scaled into the box.
_ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
KEYPOINT_OFFSETS = (_ARCFACE_DST - np.array([56.0, 64.0], dtype=np.float32)) * (FACE_SIZE / 112.0)

DETECTOR_FILE = "det_tiny.onnx"
RECOGNIZER_FILE = "rec_tiny.onnx"


def _torch():
    import torch

    return torch


def _detector_module():
    torch = _torch()
    F = torch.nn.functional

    cells = FACE_SIZE // STRIDES[0]  # the square spans this many stride-8 cells (8)
    ring = 2  # cells of dark surround checked on each side

    class TinySCRFD(torch.nn.Module):
        """Score = how well a bright FACE_SIZE square centred on the anchor stands out."""

        def forward(self, image):  # image: (1, 3, H, W), insightface-normalised (x-127.5)/128
            bright = image.mean(dim=1, keepdim=True)  # ≈ -1 dark … +1 white
            outs_score, outs_bbox, outs_kps = [], [], []
            for stride in STRIDES:
                cell = F.avg_pool2d(bright, kernel_size=stride, stride=stride)  # (1,1,h,w)
                if stride == STRIDES[0]:
                    # anchor centre (8j, 8i) sits on a cell corner: the square covers
                    # cells j-4 … j+3; the surround adds `ring` cells on each side.
                    half = cells // 2
                    inner = F.avg_pool2d(F.pad(cell, (half, half - 1, half, half - 1), value=-1.0), cells, stride=1)
                    outer_n = cells + 2 * ring
                    outer_half = half + ring
                    outer = F.avg_pool2d(
                        F.pad(cell, (outer_half, outer_half - 1, outer_half, outer_half - 1), value=-1.0),
                        outer_n,
                        stride=1,
                    )
                    inner_sum = inner * cells * cells
                    ring_mean = (outer * outer_n * outer_n - inner_sum) / (outer_n * outer_n - cells * cells)
                    # white-ish square on near-black: contrast ≈ 1.69 when centred, ≈ 1.3 one
                    # cell off; 1.4 splits them, the gain 20 makes the split sharp (0.99 vs 0.13)
                    logit = 20.0 * (inner - ring_mean - 1.4)
                else:
                    logit = cell * 0.0 - 30.0  # the coarser heads never fire
                score = torch.sigmoid(logit).reshape(-1, 1)  # (h*w, 1), row-major (y, x)
                # anchor 0 carries the score, anchor 1 never fires; SCRFD orders (y, x, anchor)
                score = torch.cat([score, score * 0.0], dim=1).reshape(-1, 1)
                ones = torch.ones_like(score)
                bbox = ones * torch.full((1, 4), FACE_SIZE / 2.0 / stride)  # l, t, r, b in strides
                kps = ones * torch.as_tensor(KEYPOINT_OFFSETS.reshape(1, 10) / stride)
                outs_score.append(score)
                outs_bbox.append(bbox)
                outs_kps.append(kps)
            return tuple(outs_score + outs_bbox + outs_kps)

    return TinySCRFD().eval()


def _recognizer_module(seed: int, batch_one_graph: bool = False):
    torch = _torch()
    rng = np.random.default_rng(seed)

    class TinyArcFace(torch.nn.Module):
        """Two strided convs and a linear layer: a deterministic 112x112 → EMBED_DIM map."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4)  # 112 → 28
            self.conv2 = torch.nn.Conv2d(8, 8, kernel_size=4, stride=4)  # 28 → 7
            self.fc = torch.nn.Linear(8 * 7 * 7, EMBED_DIM)
            with torch.no_grad():
                for name, param in self.named_parameters():
                    if name.endswith("bias"):
                        param.zero_()
                        continue
                    fan_in = max(1, int(np.prod(param.shape[1:]))) if param.ndim > 1 else 1
                    values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=tuple(param.shape))
                    param.copy_(torch.as_tensor(values, dtype=torch.float32))

        def forward(self, image):
            # centred input and features: no common offset that would make every embedding alike
            x = image - image.mean(dim=(1, 2, 3), keepdim=True)
            x = torch.relu(self.conv1(x))
            x = self.conv2(x)
            # batch_one_graph: a reshape hard-wired to batch 1, as in some converted models whose
            # ONNX still declares a dynamic batch axis; onnxruntime fails on a larger batch
            x = x.reshape(1, 8 * 7 * 7) if batch_one_graph else x.flatten(1)
            return self.fc(x - x.mean(dim=1, keepdim=True))

    return TinyArcFace().eval()


def _export(module, example, path: Path, input_name: str, output_names: list[str], dynamic_axes: dict) -> None:
    import warnings

    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny graphs; leave the shared CPU cores to the other tests
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about constants, expected here
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[input_name],
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=17,
                dynamo=False,
            )
    finally:
        torch.set_num_threads(threads)


def export_detector(path: Path) -> Path:
    """Write the SCRFD-layout detector ONNX to ``path``."""
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES]
    axes: dict = {"input.1": {2: "height", 3: "width"}}
    for name in names:
        axes[name] = {0: f"anchors_{name.split('_')[1]}"}
    _export(_detector_module(), _torch().zeros(1, 3, 128, 128), path, "input.1", names, axes)
    return path


def export_recognizer(path: Path, seed: int = 0, fixed_batch: bool = False, batch_one_graph: bool = False) -> Path:
    """Write the ArcFace-layout recognizer ONNX (dynamic batch unless ``fixed_batch``)."""
    axes = {} if fixed_batch else {"input.1": {0: "batch"}, "embedding": {0: "batch"}}
    _export(
        _recognizer_module(seed, batch_one_graph),
        _torch().zeros(1, 3, REC_SIZE, REC_SIZE),
        path,
        "input.1",
        ["embedding"],
        axes,
    )
    return path


def export_unroutable(path: Path) -> Path:
    """An ONNX that insightface's router maps to nothing (50x50 input, one output)."""
    torch = _torch()

    class Odd(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    _export(Odd().eval(), torch.zeros(1, 3, 50, 50), path, "input.1", ["mean_rgb"], {})
    return path


def write_manifest(folder: Path, style: str, roles: dict[str, str]) -> None:
    """Declare each file's role: ``style`` is ``insightface`` (manifest V2) or ``imagejury``."""
    if style == "insightface":
        (folder / "MODEL.LICENSE").write_text(
            "Synthetic test model built by imagejury's test suite; no rights reserved.\n"
        )
        tasks = {role: {"file": name} for name, role in roles.items()}
        document = {"manifest_version": 2, "model_id": "imagejury-tiny", "license": "MODEL.LICENSE", "tasks": tasks}
    elif style == "imagejury":
        document = {"format": "imagejury-face-pack/1", "roles": dict(roles)}
    else:
        raise ValueError(f"unknown manifest style {style!r}")
    (folder / "manifest.json").write_text(json.dumps(document, indent=2))


def build_pack(
    folder: Path,
    manifest: str | None = "insightface",
    fixed_batch: bool = False,
    batch_one_graph: bool = False,
    extra_unroutable: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny pack into ``folder`` and return it.

    ``manifest``: ``"insightface"`` (V2), ``"imagejury"`` (roles) or ``None`` (legacy routing).
    ``fixed_batch`` fixes the recognizer's batch axis at 1; ``batch_one_graph`` keeps it
    declared dynamic but hard-wires batch 1 inside the graph. ``extra_unroutable`` adds ``odd.onnx``, which insightface's router maps to nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export_detector(folder / DETECTOR_FILE)
    export_recognizer(folder / RECOGNIZER_FILE, seed=seed, fixed_batch=fixed_batch, batch_one_graph=batch_one_graph)
    if extra_unroutable:
        export_unroutable(folder / "odd.onnx")
    if manifest is not None:
        write_manifest(folder, manifest, {DETECTOR_FILE: "detection", RECOGNIZER_FILE: "recognition"})
    return folder


def face_image(
    size: tuple[int, int],
    squares: list[tuple[int, int]],
    side: int = FACE_SIZE,
    seed: int = 0,
) -> PIL.Image.Image:  # noqa: F821
    """A dark RGB image with a bright patterned ``side`` square at each top-left corner.

    Each square is an 8x8 grid of blocks, exactly 13 of them grey (110) and the rest white,
    placed by ``seed`` and the square's index: different squares embed differently, and
    every square is bright enough (mean ≈ 227) for the matched-filter detector.
    """
    from PIL import Image

    width, height = size
    pixels = np.full((height, width, 3), 10, dtype=np.uint8)
    block = side // 8
    for index, (x, y) in enumerate(squares):
        rng = np.random.default_rng([seed, index])
        grid = np.full(64, 255, dtype=np.uint8)
        grid[rng.choice(64, size=13, replace=False)] = 110
        face = np.kron(grid.reshape(8, 8), np.ones((block, block), dtype=np.uint8))
        pixels[y : y + side, x : x + side] = face[:, :, None]
    return Image.fromarray(pixels, "RGB")
