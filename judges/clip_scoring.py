"""Contrastive scoring on the shared CLIP features, used by every judge that reads text.

Why contrastive: a raw CLIP cosine has no absolute meaning (0.31 is a good match for
one model and a poor one for another). Scoring a caption against *foils* — the same
caption with one word changed — and taking the softmax with the model's own learned
temperature (``logit_scale``) gives a probability with a fixed meaning: how much more the
image supports this text than its alternatives. With k foils, chance is 1/(k+1).

All image embeddings come from the batch's ``FeatureCache`` so the image tower runs once
per image for all these judges together; text embeddings are cached there too.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from imagejury.judges.base import Judge
from imagejury.judges.features import shared_cache
from imagejury.judges.types import JudgeItem, Measurement
from imagejury.models.interfaces import ImageTextEmbedder

log = logging.getLogger(__name__)

DEFAULT_LOGIT_SCALE = 100.0  # CLIP's trained temperature is clamped at 100 (Radford et al. 2021)


def logit_scale_of(embedder: ImageTextEmbedder) -> float:
    """The embedder's temperature; CLIP's 100 if it does not report a usable one."""
    try:
        value = float(embedder.logit_scale)
    except (AttributeError, TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        log.warning(
            "embedder %s reports no usable logit_scale; using %.0f", getattr(embedder, "key", "?"), DEFAULT_LOGIT_SCALE
        )
        return DEFAULT_LOGIT_SCALE
    return value


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Contrast:
    """One caption scored against its foils on one image."""

    text: str
    score: float  # softmax probability of ``text`` among [text, *foils]
    cosine: float
    margin: float  # cosine(text) - max cosine(foil); > 0 means the text beats every foil
    best_foil: str | None
    best_foil_prob: float
    best_foil_class: str | None
    foil_probs: dict[str, float] = field(default_factory=dict)
    n_foils: int = 0

    @property
    def chance(self) -> float:
        return 1.0 / (self.n_foils + 1)

    def as_dict(self, top: int = 3) -> dict:
        top_foils = dict(sorted(self.foil_probs.items(), key=lambda kv: -kv[1])[:top])
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "cosine": round(self.cosine, 4),
            "margin": round(self.margin, 4),
            "best_foil": self.best_foil,
            "best_foil_score": round(self.best_foil_prob, 4),
            "foils_scored": self.n_foils,
            "top_foils": {k: round(v, 4) for k, v in top_foils.items()},
        }


def contrast(
    image_emb: np.ndarray,
    text: str,
    foils: Sequence[str],
    emb: dict[str, np.ndarray],
    logit_scale: float,
    foil_classes: Sequence[str | None] | None = None,
) -> Contrast:
    """Score ``text`` against ``foils`` on one image embedding (all rows L2-normalised)."""
    texts = [text, *foils]
    mat = np.stack([emb[t] for t in texts])
    cos = mat @ image_emb
    probs = softmax(logit_scale * cos)
    if foils:
        j = int(np.argmax(cos[1:])) + 1
        best, best_p, margin = texts[j], float(probs[j]), float(cos[0] - cos[j])
        best_cls = foil_classes[j - 1] if foil_classes else None
    else:
        best, best_p, margin, best_cls = None, 0.0, float("nan"), None
    return Contrast(
        text=text,
        score=float(probs[0]),
        cosine=float(cos[0]),
        margin=margin,
        best_foil=best,
        best_foil_prob=best_p,
        best_foil_class=best_cls,
        foil_probs={t: float(p) for t, p in zip(texts[1:], probs[1:])},
        n_foils=len(foils),
    )


#: the emptiness foil's pass point: P(this image over a plain canvas of its own mean
#: colour | text) must reach 0.6. It must be above 0.5, where a plain image ties with its
#: own canvas. Chosen on a calibration split of the tiny shapes CLIP
#: (benchmarks/emptiness_foil.py, seed 4242): 0.55-0.6 keep 100% of right captions and refuse
#: as many empties as any higher value; checked on a held-out split (seed 777) in
#: benchmarks/RESULTS.md. With a real CLIP's logit scale of 100, 0.6 is a cosine gap of
#: 0.004 over the plain canvas — not measured on real images here.
EMPTY_THRESHOLD = 0.6
EMPTY_UNITS = "P(this image over a plain canvas of its mean colour | text), softmax with the logit scale"
#: plain-canvas colours are quantised so that near-identical canvases share one forward pass
_CANVAS_STEP = 8
_CANVAS_SIDE = 64


#: the emptiness foil applies to near-uniform images only: luminance standard deviation
#: below 12 (0-255 scale, 32 px thumbnail). Why a gate: the canvas costs one more image
#: forward pass, and an image with more variation than this is not blank — what it shows is
#: judged by the text foils. Uniform and near-uniform images (std ~0-5) are all covered;
#: photos measure 25-65 (skimage's cat 26, astronaut 64), the tiny shapes 1-81.
PLAIN_STD = 12.0


def looks_plain(image: Image.Image) -> bool:
    """True when the image is near-uniform enough that it may show nothing (see PLAIN_STD)."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    return float(grey.std()) < PLAIN_STD


def plain_canvas(image: Image.Image) -> tuple[str, Image.Image]:
    """The emptiness foil for an image: a uniform canvas of its mean colour, and its cache key.

    Why an image and not a caption: "a blank image" means little to a model that never saw
    one (the tiny test CLIP), while "the text fits this image better than it fits nothing of
    the same colours" needs no word the model must know."""
    mean = np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.float32).reshape(-1, 3).mean(axis=0)
    rgb = tuple(int(min(255, round(float(c) / _CANVAS_STEP) * _CANVAS_STEP)) for c in mean)
    return f"plain-canvas:{rgb[0]},{rgb[1]},{rgb[2]}", Image.new("RGB", (_CANVAS_SIDE, _CANVAS_SIDE), rgb)


def emptiness_score(text_emb: np.ndarray, image_emb: np.ndarray, plain_emb: np.ndarray, logit_scale: float) -> float:
    """P(image over its plain canvas | text): 0.5 when the image is no better than nothing."""
    logits = logit_scale * np.array([float(text_emb @ image_emb), float(text_emb @ plain_emb)])
    return float(softmax(logits)[0])


# The emptiness foil's verdict, its measurement and its wording, shared by the three judges
# that apply it (prompt adherence, attributes, instructions).
def not_empty(p: float | None) -> bool:
    """True when the foil was not applied (``None``) or the image beat its plain canvas."""
    return p is None or p >= EMPTY_THRESHOLD


def emptiness_measurement(name: str, p: float, model: str) -> Measurement:
    return Measurement(name, p, EMPTY_THRESHOLD, True, EMPTY_UNITS, model=model)


def emptiness_evidence(label: str, p: float) -> str:
    return f"{label}: emptiness foil p={p:.3f} (needs {EMPTY_THRESHOLD:.2f})"


def no_better_than_plain(what: str, p: float) -> str:
    """Why a text failed the foil: ``the image fits <what> no better than a plain canvas …``."""
    return f"the image fits {what} no better than a plain canvas of its own colours (p={p:.2f} < {EMPTY_THRESHOLD:.2f})"


@dataclass(frozen=True)
class ModelThreshold:
    pattern: str  # fnmatch pattern on the CLIP source string (ModelSet.clip_source)
    value: float
    source: str  # where the number came from


@dataclass
class ThresholdTable:
    """Pass thresholds per CLIP model, each with its provenance; first match wins."""

    rows: list[ModelThreshold]
    default: ModelThreshold

    def lookup(self, clip_source: str) -> ModelThreshold:
        for row in self.rows:
            if fnmatch.fnmatch(clip_source.lower(), row.pattern.lower()):
                return row
        return self.default

    def resolve(self, configured: float | None, clip_source: str) -> ModelThreshold:
        """The judge config's ``threshold`` when set, else this table's row for the CLIP."""
        if configured is not None:
            return ModelThreshold("config", configured, "set in the judge config")
        return self.lookup(clip_source)


class ClipTextJudge(Judge):
    """Base for judges on the shared image–text embedder: lazy model, cached features."""

    models = frozenset({"image_text"})

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - forwards Judge's signature
        super().__init__(*args, **kwargs)
        self._embedder: ImageTextEmbedder | None = None

    def warmup(self) -> None:
        self._embedder = self.model_set.embedder()

    @property
    def embedder(self) -> ImageTextEmbedder:
        if self._embedder is None:
            self.warmup()
        assert self._embedder is not None
        return self._embedder

    @property
    def clip_source(self) -> str:
        return self.model_set.clip_source

    def image_embeddings(self, batch: Sequence[JudgeItem]) -> np.ndarray:
        """(N, D) for the batch, from the shared cache: one image forward pass per image."""
        cache = shared_cache(batch)
        return cache.image_embeddings(self.embedder, [i.image_key for i in batch], [i.image for i in batch])

    def plain_embeddings(self, batch: Sequence[JudgeItem]) -> list[np.ndarray | None]:
        """Per item, the embedding of its emptiness foil (``plain_canvas``) through the shared
        cache — for near-uniform images (``looks_plain``); None for the others."""
        cache = shared_cache(batch)
        wanted = [n for n, item in enumerate(batch) if looks_plain(item.image)]
        out: list[np.ndarray | None] = [None] * len(batch)
        if wanted:
            canvases = [plain_canvas(batch[n].image) for n in wanted]
            rows = cache.image_embeddings(self.embedder, [k for k, _ in canvases], [c for _, c in canvases])
            for n, row in zip(wanted, rows):
                out[n] = row
        return out

    def text_embeddings(self, batch: Sequence[JudgeItem], texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings of all distinct texts in one call, through the shared cache."""
        uniq = list(dict.fromkeys(texts))
        if not uniq:
            return {}
        cache = shared_cache(batch)
        rows = cache.text_embeddings(self.embedder, uniq)
        return dict(zip(uniq, rows))

    @property
    def logit_scale(self) -> float:
        return logit_scale_of(self.embedder)
