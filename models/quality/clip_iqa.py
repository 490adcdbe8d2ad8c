"""CLIP-IQA (Wang, Chan & Loy, AAAI 2023) on any ImageTextEmbedder.

For each antonym prompt pair the image's cosines to the two prompts are turned into a
softmax with the model's own logit scale; the score is the probability of the positive
prompt, averaged over pairs. It needs no weights of its own, so it is computed from the
shared CLIP image features (``clip_iqa_from_embeddings``) and the judges reuse the
forward pass every other CLIP judge already paid for.

Raw values depend on the CLIP model: the paper reports usable quality ranking with
ResNet-50 CLIP; with ViT models and plain prompts the spread is narrower. Thresholds on
it belong to the judge's config, per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from imagejury.models.interfaces import ImageTextEmbedder, QualityScore

# The paper's default pair ("Good photo." / "Bad photo."), first; more pairs may be given.
DEFAULT_PROMPT_PAIRS: tuple[tuple[str, str], ...] = (("Good photo.", "Bad photo."),)


def clip_iqa_from_embeddings(
    image_emb: np.ndarray,
    pos_emb: np.ndarray,
    neg_emb: np.ndarray,
    logit_scale: float,
) -> np.ndarray:
    """(N,) scores in [0, 1] from L2-normalised image (N, D) and prompt (P, D) embeddings.

    Row ``p`` of ``pos_emb``/``neg_emb`` is one antonym pair; the pairs are averaged.
    """
    image_emb = np.atleast_2d(np.asarray(image_emb, dtype=np.float64))
    pos = np.atleast_2d(np.asarray(pos_emb, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(neg_emb, dtype=np.float64))
    if pos.shape != neg.shape:
        raise ValueError("positive and negative prompt embeddings must pair up")
    lp = logit_scale * image_emb @ pos.T  # (N, P)
    ln = logit_scale * image_emb @ neg.T
    # softmax over the pair, written stably: 1 / (1 + exp(ln - lp))
    prob = 1.0 / (1.0 + np.exp(np.clip(ln - lp, -60.0, 60.0)))
    return prob.mean(axis=1)


class ClipIQAScorer:
    """CLIP-IQA as a QualityScorer over a given embedder; higher is better."""

    name = "clip_iqa"
    higher_is_better = True
    range = (0.0, 1.0)

    def __init__(
        self,
        embedder: ImageTextEmbedder,
        prompt_pairs: Sequence[tuple[str, str]] = DEFAULT_PROMPT_PAIRS,
    ) -> None:
        if not prompt_pairs:
            raise ValueError("CLIP-IQA needs at least one (positive, negative) prompt pair")
        self.embedder = embedder
        self.prompt_pairs = tuple((str(p), str(n)) for p, n in prompt_pairs)
        # the feature cache keys scores by scorer name: include the model so two CLIPs differ
        self.name = f"clip_iqa[{getattr(embedder, 'key', 'clip')}]"
        self.where = f"computed on {getattr(embedder, 'key', 'the configured CLIP')}"

    def prompt_embeddings(self, text_embeddings=None) -> tuple[np.ndarray, np.ndarray]:
        """(pos, neg) prompt embeddings; ``text_embeddings(texts)`` lets a caller use its cache."""
        encode = text_embeddings or self.embedder.encode_texts
        pos = encode([p for p, _ in self.prompt_pairs])
        neg = encode([n for _, n in self.prompt_pairs])
        return np.asarray(pos), np.asarray(neg)

    def from_embeddings(self, image_emb: np.ndarray, text_embeddings=None) -> list[QualityScore]:
        pos, neg = self.prompt_embeddings(text_embeddings)
        scale = float(self.embedder.logit_scale)
        values = clip_iqa_from_embeddings(image_emb, pos, neg, scale)
        return [
            QualityScore(self.name, float(v), True, self.range, {"logit_scale": scale, "pairs": len(self.prompt_pairs)})
            for v in values
        ]

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        if not images:
            return []
        return self.from_embeddings(np.asarray(self.embedder.encode_images(list(images))))
