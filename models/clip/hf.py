"""Hugging Face backend: a transformers ``CLIPModel`` or ``SiglipModel`` from a folder.

Why a second backend: many users hold CLIP/SigLIP weights as transformers folders (or in
the HF cache) rather than open_clip checkpoints. The tokenizer is checked against the
model, because offline ``from_pretrained`` can silently return a broken tokenizer
(vocabulary size 2, FINDINGS.md) and every text score would then be noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from imagejury.models.clip.base import EmbedderBase
from imagejury.models.clip.sources import Resolved
from imagejury.models.errors import ModelError, ModelUnavailableError

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("clip", "siglip")


class HFClipEmbedder(EmbedderBase):
    """A transformers CLIP/SigLIP behind ``ImageTextEmbedder``; see ``EmbedderBase`` for counters."""

    def __init__(
        self,
        model: torch.nn.Module,
        image_processor,
        tokenizer,
        source: str,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        text_cache_size: int = 4096,
    ) -> None:
        super().__init__(device=device, dtype=dtype, batch_size=batch_size, text_cache_size=text_cache_size)
        self.source = source
        self.key = f"transformers:{source}|{device}|{dtype}"
        self.model = model.to(self.device).eval()
        self.model_type = model.config.model_type
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        check_tokenizer(tokenizer, model.config, source)
        text_cfg = model.config.text_config
        self.context_length = int(text_cfg.max_position_embeddings)
        self.embed_dim = int(getattr(model.config, "projection_dim", None) or text_cfg.hidden_size)
        # SigLIP was trained on texts padded to the full context; CLIP pads to the longest.
        self._padding = "max_length" if self.model_type == "siglip" else "longest"

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp().cpu())

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def _image_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        enc = self.tokenizer(
            list(texts), padding=self._padding, truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        kwargs = {"input_ids": enc["input_ids"].to(self.device)}
        if "attention_mask" in enc and self.model_type != "siglip":
            kwargs["attention_mask"] = enc["attention_mask"].to(self.device)
        return _pooled(self.model.get_text_features(**kwargs))


def _pooled(out) -> torch.Tensor:
    """transformers 4 returns a tensor, transformers 5 an output whose pooler_output is projected."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelError(f"unexpected output from the transformers model: {type(out).__name__}")
    return pooled


def check_tokenizer(tokenizer, config, source: str) -> None:
    """Raise ModelError unless the tokenizer's vocabulary is the model's."""
    vocab = int(config.text_config.vocab_size)
    n = len(tokenizer)
    if config.model_type == "clip":
        ok = n == vocab
    else:  # sentencepiece vocabularies may be padded in the embedding table
        ok = vocab * 0.5 <= n <= vocab
    if not ok:
        raise ModelError(
            f"the tokenizer loaded for '{source}' has {n} tokens but the model's text embedding has {vocab}: "
            "it is not this model's tokenizer (offline, transformers can return a stub tokenizer instead of "
            "raising). Save the matching tokenizer into the model folder (tokenizer.save_pretrained(folder))."
        )
    ids = tokenizer("a photo of a dog")["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if max(ids) >= vocab or (unk is not None and sum(i == unk for i in ids) > 1):
        raise ModelError(f"the tokenizer loaded for '{source}' does not tokenize English into this model's vocabulary")


def load_hf_clip(
    resolved: Resolved, device: str = "cpu", dtype: str = "float32", batch_size: int = 32
) -> HFClipEmbedder:
    """Load a transformers CLIP/SigLIP; local folders never touch the network."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    ref = resolved.folder or resolved.hub_id
    if ref is None:  # pragma: no cover - resolve() never returns this
        raise ModelError(f"nothing to load for {resolved.source}")
    local = resolved.folder is not None
    if local:
        folder = Path(ref)
        if not (folder / "preprocessor_config.json").is_file():
            raise ModelUnavailableError(
                resolved.source,
                f"{folder / 'preprocessor_config.json'} (missing: the model's own image preprocessing)",
                "save the processor into the folder: CLIPProcessor.from_pretrained(...).save_pretrained(folder)",
            )
    try:
        config = AutoConfig.from_pretrained(ref, local_files_only=local)
        if config.model_type not in SUPPORTED_TYPES:
            raise ModelError(
                f"'{resolved.source}' is a transformers '{config.model_type}' model; the HF backend supports "
                f"{', '.join(SUPPORTED_TYPES)}"
            )
        if config.model_type == "clip":
            from transformers import CLIPModel as model_cls
        else:
            from transformers import SiglipModel as model_cls
        model = model_cls.from_pretrained(ref, local_files_only=local)
        tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=local)
        processor = AutoImageProcessor.from_pretrained(ref, local_files_only=local)
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            resolved.source, resolved.where, f"the folder is incomplete or unreadable ({exc})"
        ) from exc
    embedder = HFClipEmbedder(
        model, processor, tokenizer, resolved.source, device=device, dtype=dtype, batch_size=batch_size
    )
    log.info(
        "loaded %s from %s (dim %d, context %d)",
        resolved.source,
        resolved.where,
        embedder.embed_dim,
        embedder.context_length,
    )
    return embedder
