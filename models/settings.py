"""Which models to use: one settings object shared by the library, CLI, batch and server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

DEVICE_HELP = "auto (CUDA when torch sees it, else CPU; the default), cpu, cuda or cuda:N"


@dataclass(frozen=True)
class ModelSettings:
    """Model choices. ``clip`` is a source string:

    - ``NAME:TAG`` — an open_clip model with a pretrained tag (``ViT-B-32:openai``)
    - ``NAME:/path/to/checkpoint.pt`` — an open_clip architecture with a local checkpoint
    - ``local-dir:PATH`` — an open_clip folder (``open_clip_config.json`` + weights)
    - ``hf-hub:ORG/REPO`` — an open_clip model on the Hugging Face hub (or its cache)
    - ``hf:PATH_OR_ID`` or a folder with ``config.json`` — a transformers CLIP/SigLIP
    """

    clip: str | None = None  # None: the job class default
    face_backend: str = "dlib"  # dlib | insightface
    face_model: str | None = None  # insightface model-pack folder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    torch_threads: int | None = None
    aesthetic_head: str | None = None  # LAION aesthetic predictor MLP weights
    extra: dict = field(default_factory=dict)

    @cached_property
    def resolved_device(self) -> str:
        """The device models load on: ``auto`` is CUDA when torch sees it, else the CPU.

        Resolved on first use (it imports torch), so reading settings stays cheap."""
        return resolve_device(self.device)

    @staticmethod
    def hf_offline() -> bool:
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a CUDA device, else ``cpu``; others unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
