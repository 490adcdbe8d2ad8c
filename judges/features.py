"""Shared per-image features: each backbone runs once per image, for every judge.

A judge asks the cache for "the CLIP embeddings of these items"; only the missing ones
are computed, in one batched call. The evaluator creates one cache per batch and hands
it to every item, so judges that share a model share its forward pass.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from PIL import Image


class FeatureCache:
    def __init__(self) -> None:
        self._store: dict[tuple[str, str, Hashable], Any] = {}
        self._lock = threading.RLock()

    def get_or_compute(
        self,
        feature: str,
        model_key: str,
        keys: Sequence[Hashable],
        inputs: Sequence[Any],
        compute: Callable[[list[Any]], Sequence[Any]],
    ) -> list[Any]:
        """Return the feature for each key, computing the missing ones in one call.

        ``compute`` receives the de-duplicated missing inputs (batch in, list out).
        """
        with self._lock:
            missing: dict[Hashable, Any] = {}
            for k, x in zip(keys, inputs):
                if (feature, model_key, k) not in self._store and k not in missing:
                    missing[k] = x
            if missing:
                outs = compute(list(missing.values()))
                if len(outs) != len(missing):
                    raise RuntimeError(f"{feature}: compute returned {len(outs)} results for {len(missing)} inputs")
                for k, out in zip(missing, outs):
                    self._store[(feature, model_key, k)] = out
            return [self._store[(feature, model_key, k)] for k in keys]

    # convenience wrappers used by the judges ------------------------------
    def image_embeddings(self, embedder: Any, keys: Sequence[str], images: Sequence[Image.Image]) -> np.ndarray:
        rows = self.get_or_compute(
            "clip_image", embedder.key, keys, images, lambda xs: list(embedder.encode_images(xs))
        )
        return np.stack(rows) if rows else np.zeros((0, getattr(embedder, "embed_dim", 0)), dtype=np.float32)

    def text_embeddings(self, embedder: Any, texts: Sequence[str]) -> np.ndarray:
        rows = self.get_or_compute("clip_text", embedder.key, texts, texts, lambda xs: list(embedder.encode_texts(xs)))
        return np.stack(rows) if rows else np.zeros((0, getattr(embedder, "embed_dim", 0)), dtype=np.float32)

    def faces(self, analyzer: Any, keys: Sequence[str], images: Sequence[Image.Image]) -> list[list[Any]]:
        return self.get_or_compute("faces", analyzer.key, keys, images, lambda xs: analyzer.analyze(xs))

    def working_copies(self, keys: Sequence[str], images: Sequence[Image.Image], device: str = "cpu") -> list[Any]:
        """The pixel measures' shared working copy of each image (shrunk, grey, half-size),
        on ``device``, computed once per image however many measures and judges read it."""
        from imagejury.models.quality.working import make_working_copies

        return self.get_or_compute(
            "working_copy", f"max1024:{device}", keys, images, lambda xs: make_working_copies(xs, device=device)
        )

    def quality(self, scorer: Any, keys: Sequence[str], images: Sequence[Image.Image]) -> list[Any]:
        """One scorer's scores, measured on the shared working copies (on the scorer's device)."""
        copies = self.working_copies(keys, images, getattr(scorer, "device", "cpu"))
        return self.get_or_compute("quality", scorer.name, keys, copies, lambda xs: scorer.score(xs))

    def __len__(self) -> int:
        return len(self._store)


def shared_cache(items: Sequence[Any]) -> FeatureCache:
    """The cache a batch of items shares (the first item's), so one call covers all."""
    return items[0].features if items else FeatureCache()


def content_key(image: Image.Image, key: str = "") -> str:
    """The given cache key, or a content hash of the pixels when the caller left it empty."""
    if key:
        return key
    h = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    return "sha256:" + h.hexdigest()[:32]


def group_by_cache(caches: Sequence[FeatureCache]) -> list[tuple[FeatureCache, list[int]]]:
    """Positions that share each distinct cache (first-seen order), so a judge makes one
    model call per cache instead of one per item."""
    groups: dict[int, tuple[FeatureCache, list[int]]] = {}
    for i, cache in enumerate(caches):
        groups.setdefault(id(cache), (cache, []))[1].append(i)
    return list(groups.values())
