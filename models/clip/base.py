"""What every image–text embedder backend shares: batching, caching, chunking, counting.

Why: the OpenCLIP and Hugging Face backends differ only in how they preprocess, tokenise
and run their towers. Batching, L2 normalisation, the text-embedding LRU cache, long-prompt
chunking with a recorded warning, device/dtype handling and forward-pass counters live here
once, so both backends behave identically for the judges and the tests.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagejury.models.clip.text_chunking import chunk_text
from imagejury.models.errors import ModelError

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """Validate a device/dtype pair; half precision is only used on CUDA (as autocast)."""
    if dtype not in _DTYPES:
        raise ModelError(f"unknown dtype '{dtype}' (choose float32, float16 or bfloat16)")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device '{device}' (use cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device '{device}' was requested but torch sees no CUDA device here; use --device cpu")
    if dev.type not in {"cpu", "cuda"}:
        raise ModelError(f"device '{device}' is not supported (use cpu or cuda)")
    compute = _DTYPES[dtype]
    if dev.type == "cpu" and compute == torch.float16:
        log.warning("float16 is not used on CPU (slow and inexact there); computing in float32")
        compute = torch.float32
    return dev, compute


class EmbedderBase:
    """Shared behaviour of ``ImageTextEmbedder`` backends.

    Subclasses set ``key``, ``embed_dim``, ``context_length`` and implement
    ``_image_tensor``, ``_image_features``, ``_text_features`` and ``count_tokens``.

    Counters (tests and benchmarks read them):
      - ``image_forward_calls``: images passed through the image tower
      - ``text_forward_calls``: token sequences passed through the text tower (a chunked
        prompt counts once per chunk; a cached prompt counts zero)
      - ``chunked_texts``: prompts that were longer than the context and were chunked
    """

    key: str
    embed_dim: int
    context_length: int

    def __init__(
        self,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        text_batch_size: int = 64,
        text_cache_size: int = 4096,
    ) -> None:
        if batch_size < 1 or text_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")
        self.device, self.compute_dtype = resolve_device(device, dtype)
        self.dtype_name = dtype
        self.batch_size = batch_size
        self.text_batch_size = text_batch_size
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self.image_forward_calls = 0
        self.text_forward_calls = 0
        self.chunked_texts = 0
        self.last_warnings: list[str] = []  # most recent last; bounded to 100 entries

    # -- backend hooks ------------------------------------------------------------
    def _image_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """Tokens the text tower would see for ``text``, special tokens included."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda" and self.compute_dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.compute_dtype)
        if self.device.type == "cpu" and self.compute_dtype == torch.bfloat16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _warn(self, message: str) -> None:
        log.warning(message)
        self.last_warnings.append(message)
        del self.last_warnings[:-100]

    @staticmethod
    def _normalise(x: torch.Tensor) -> np.ndarray:
        arr = x.detach().float().cpu().numpy().astype(np.float32, copy=False)
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.maximum(norms, 1e-12)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32, rows L2-normalised; ``batch_size`` images per forward pass."""
        images = list(images)
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise TypeError(f"encode_images expects PIL images; item {i} is {type(im).__name__}")
        if not images:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        out: list[np.ndarray] = []
        with self._lock, torch.inference_mode(), self._autocast():
            for start in range(0, len(images), self.batch_size):
                batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
                pixels = self._image_tensor(batch).to(self.device)
                feats = self._image_features(pixels)
                self.image_forward_calls += len(batch)
                out.append(self._normalise(feats))
        return np.concatenate(out, axis=0)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) float32, rows L2-normalised; cached by exact text (LRU)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"encode_texts expects strings; item {i} is {type(t).__name__}")
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
            if missing:
                self._encode_uncached(missing)
            rows = []
            for t in texts:
                self._text_cache.move_to_end(t)
                rows.append(self._text_cache[t])
            result = np.stack(rows).astype(np.float32, copy=True)
            while len(self._text_cache) > self.text_cache_size:
                self._text_cache.popitem(last=False)
        return result

    def _encode_uncached(self, texts: list[str]) -> None:
        spans: list[tuple[int, int]] = []
        sequences: list[str] = []
        for text in texts:
            chunks = chunk_text(text, self.count_tokens, self.context_length)
            if len(chunks) > 1:
                self.chunked_texts += 1
                self._warn(
                    f"prompt of {self.count_tokens(text)} tokens exceeds the text context of "
                    f"{self.context_length}; encoded as {len(chunks)} chunks and averaged: {text[:60]!r}..."
                )
            spans.append((len(sequences), len(sequences) + len(chunks)))
            sequences.extend(chunks)
        feats: list[np.ndarray] = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(sequences), self.text_batch_size):
                batch = sequences[start : start + self.text_batch_size]
                feats.append(self._normalise(self._text_features(batch)))
                self.text_forward_calls += len(batch)
        all_feats = np.concatenate(feats, axis=0)
        for text, (a, b) in zip(texts, spans):
            vec = all_feats[a:b].mean(axis=0)
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
            vec.setflags(write=False)
            self._text_cache[text] = vec

    def clear_text_cache(self) -> None:
        with self._lock:
            self._text_cache.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"
