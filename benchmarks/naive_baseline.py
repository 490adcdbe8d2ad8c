"""The naive way to run the same checks: every check loads its own model and runs its own
forward passes — what users assemble today from separate metrics.

Why: the speed claim of imagejury's design (one model instance per process, one image
forward pass per image shared by every judge, texts cached across judges) needs a
baseline that does the same checks *without* sharing, on the same images. Two parts:

- ``ClipScoreCheck`` — torchmetrics-style CLIPScore (``100 * max(cos(image, prompt), 0)``,
  Hessel et al. 2021) with its own CLIP instance; every call encodes the image *and* the
  prompt, as ``torchmetrics.multimodal.CLIPScore.update`` does.
- ``NaiveBaseline`` — each of our judges as a separate check: its own ``ModelRegistry``
  (so its own CLIP instance for prompt adherence / instructions / attributes /
  aesthetics / safety, its own CLIP for technical_quality's CLIP-IQA and its own
  BRISQUE/NIQE/PIQE, its own dlib instance for identity and for headshot) and its own
  ``FeatureCache`` (so its own image forward pass). The judge logic and texts are the
  same as in the pipeline, so the difference measured is exactly what sharing buys.
  With ``prompt_check="clipscore"`` the prompt check is the CLIPScore above instead of
  the contrastive prompt-adherence judge (the cheaper check users actually run).

Random weights: speed figures only need the architecture. ``random_embedder`` builds an
open_clip architecture with random weights — through the loader's ``random:ARCH`` source
where the installed ``imagejury.models.clip.sources`` offers it, otherwise directly with
``open_clip.create_model_and_transforms(arch, pretrained=None)`` — and logs a warning.
Never use it for accuracy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from imagejury.judges.base import Judge
from imagejury.judges.features import FeatureCache
from imagejury.judges.registry import JudgeRegistry, judge_registry
from imagejury.judges.types import JudgeItem
from imagejury.models.errors import ModelError
from imagejury.models.provider import ModelSet
from imagejury.models.registry import ModelRegistry
from imagejury.models.settings import ModelSettings

log = logging.getLogger(__name__)

RANDOM_PREFIX = "random:"


def random_embedder(arch: str, device: str = "cpu", dtype: str = "float32", batch_size: int = 32) -> Any:
    """A fresh ``OpenClipEmbedder`` of ``arch`` with random weights (speed benchmarks only)."""
    source = f"{RANDOM_PREFIX}{arch}"
    try:
        from imagejury.models.clip import load_embedder

        return load_embedder(source, device=device, dtype=dtype, batch_size=batch_size)
    except ModelError:
        pass  # this imagejury.models.clip.sources has no random: source; build it here
    import open_clip

    from imagejury.models.clip.openclip import OpenClipEmbedder

    log.warning("building %s with RANDOM weights: for speed figures only, its scores mean nothing", arch)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device="cpu")
    return OpenClipEmbedder(
        model, preprocess, open_clip.get_tokenizer(arch), source, device=device, dtype=dtype, batch_size=batch_size
    )


def clip_source(spec: str) -> str:
    """``ViT-B-32`` → ``random:ViT-B-32``; a full source (``local-dir:...``, ``ViT-B-32:openai``) stays."""
    return spec if ":" in spec else f"{RANDOM_PREFIX}{spec}"


def fresh_embedder(spec: str, device: str = "cpu", dtype: str = "float32", batch_size: int = 32) -> Any:
    """A new embedder instance for ``spec``: an architecture name (random weights) or a CLIP source."""
    if ":" in spec and not spec.startswith(RANDOM_PREFIX):
        from imagejury.models.clip import load_embedder

        return load_embedder(spec, device=device, dtype=dtype, batch_size=batch_size)
    return random_embedder(spec.removeprefix(RANDOM_PREFIX), device=device, dtype=dtype, batch_size=batch_size)


def preregister_embedder(registry: ModelRegistry, settings: ModelSettings, embedder: Any, job_class: str) -> None:
    """Put ``embedder`` in ``registry`` under the key ``ModelSet.embedder()`` looks up."""
    ms = ModelSet(settings, registry, job_class)
    registry.get("image_text", ms.clip_source, lambda: embedder, device=settings.resolved_device, dtype=ms.dtype)


class ClipScoreCheck:
    """torchmetrics-style CLIPScore on its own CLIP instance: image and prompt encoded per call."""

    name = "clipscore"

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder  # an OpenClipEmbedder: we call its raw model, not its caches

    def score(self, images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        emb = self.embedder
        with torch.inference_mode(), emb._autocast():
            pixels = emb._image_tensor([im.convert("RGB") for im in images]).to(emb.device)
            img = emb._image_features(pixels).float()
            txt = emb._text_features(list(prompts)).float()
        img = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        txt = txt / txt.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (100.0 * (img * txt).sum(-1).clamp_min(0.0)).cpu().numpy().astype(np.float64).tolist()


@dataclasses.dataclass
class CheckTiming:
    name: str
    seconds: float = 0.0
    load_seconds: float = 0.0
    instances: int = 1


class NaiveBaseline:
    """Each check with its own model instances and its own forward passes.

    ``judge_names`` are the judges the pipeline planned for the items; ``embedder_factory``
    makes a *new* embedder on every call (each CLIP check gets its own). With
    ``clipscore=True`` a torchmetrics-style CLIPScore check (own CLIP) is added as well.
    """

    def __init__(
        self,
        judge_names: Sequence[str],
        settings: ModelSettings,
        job_class: str,
        embedder_factory: Any,
        *,
        clipscore: bool = False,
        judge_configs: dict[str, dict[str, Any]] | None = None,
        judges: JudgeRegistry | None = None,
    ) -> None:
        self.checks: dict[str, Any] = {}
        self.timings: dict[str, CheckTiming] = {}
        self._clip_image_passes = 0
        reg = judges or judge_registry
        for name in judge_names:
            t0 = time.perf_counter()
            cls = reg.get(name)
            registry = ModelRegistry()  # nothing shared with any other check
            if "image_text" in cls.models or name == "technical_quality":  # technical_quality: its CLIP-IQA
                preregister_embedder(registry, settings, embedder_factory(), job_class)
            judge: Judge = cls(dict((judge_configs or {}).get(name, {})), ModelSet(settings, registry, job_class))
            judge.warmup()
            self.checks[name] = judge
            self.timings[name] = CheckTiming(
                name, load_seconds=time.perf_counter() - t0, instances=len(registry.loaded())
            )
        if clipscore:
            t0 = time.perf_counter()
            self.checks["clipscore"] = ClipScoreCheck(embedder_factory())
            self.timings["clipscore"] = CheckTiming("clipscore", load_seconds=time.perf_counter() - t0)

    def model_instances(self) -> int:
        return sum(t.instances for t in self.timings.values())

    def image_passes(self) -> int:
        """CLIP image-tower passes run by all checks so far (one per image per CLIP check)."""
        # ClipScoreCheck runs its model directly (not counted by the embedder): counted here
        return self._clip_image_passes + sum(e.image_forward_calls for e in self.embedders())

    def embedders(self) -> list[Any]:
        out = [c.embedder for c in self.checks.values() if isinstance(c, ClipScoreCheck)]
        for check in self.checks.values():
            if isinstance(check, Judge):
                reg = check.model_set.registry
                out += [
                    reg.get(*k[:2], _never, weights=k[2], device=k[3], dtype=k[4])
                    for k in reg.loaded()
                    if k[0] == "image_text"
                ]
        return out

    def clear_text_caches(self) -> None:
        for emb in self.embedders():
            emb.clear_text_cache()

    def reset_timings(self) -> None:
        for t in self.timings.values():
            t.seconds = 0.0

    def run(self, items: Sequence[JudgeItem], names: Sequence[str] | None = None) -> float:
        """Run the named checks (default all) over ``items``, each check with a fresh
        feature cache so it pays its own forward passes; returns seconds."""
        start = time.perf_counter()
        for name in names if names is not None else list(self.checks):
            check = self.checks[name]
            t0 = time.perf_counter()
            if isinstance(check, ClipScoreCheck):
                with_prompt = [it for it in items if it.prompt]
                if with_prompt:
                    check.score([it.image for it in with_prompt], [it.prompt or "" for it in with_prompt])
                    self._clip_image_passes += len(with_prompt)
            else:
                cache = FeatureCache()  # one cache per check: its own forward passes only
                mine = [dataclasses.replace(it, features=cache) for it in items if check.applies(it)]
                if mine:
                    check.judge(mine)
            self.timings[name].seconds += time.perf_counter() - t0
        return time.perf_counter() - start


def _never() -> Any:
    raise RuntimeError("model expected to be loaded already")
