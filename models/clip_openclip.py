"""OpenCLIP backend: any open_clip model, from local weights resolved by ``clip_loader``.

Why open_clip: it is what most users already run for CLIP scores, it ships the CLIP BPE,
and its ``local-dir:`` folder format lets the project's tiny test model load through the
same code path as real weights.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from PIL import Image

from models.clip_base import EmbedderBase
from models.clip_loader import Resolved
from models.errors import ModelError, ModelUnavailableError

log = logging.getLogger(__name__)


class OpenClipEmbedder(EmbedderBase):
    """An open_clip model behind ``ImageTextEmbedder``; see ``EmbedderBase`` for counters."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess,
        tokenizer,
        source: str,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        text_cache_size: int = 4096,
    ) -> None:
        super().__init__(device=device, dtype=dtype, batch_size=batch_size, text_cache_size=text_cache_size)
        self.source = source
        self.key = f"open_clip:{source}|{device}|{dtype}"
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.context_length = int(getattr(model, "context_length", None) or tokenizer.context_length)
        with torch.inference_mode():  # one tiny text pass: the projection size, whatever the architecture
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))
        self.embed_dim = int(probe.shape[-1])

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp().cpu())

    def count_tokens(self, text: str) -> int:
        tok = self.tokenizer
        inner = getattr(tok, "tokenizer", None)  # open_clip's HFTokenizer wraps a transformers one
        if inner is not None and callable(inner):
            return len(inner(text)["input_ids"])
        return len(tok.encode(text)) + 2  # SimpleTokenizer: start + BPE + end

    def _image_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(im) for im in images])

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens)


def load_open_clip(resolved: Resolved, device: str = "cpu", dtype: str = "float32", batch_size: int = 32) -> OpenClipEmbedder:
    """Build the open_clip model for a resolved source without any network access
    (except when ``resolved.hub_id`` says the user is online and the weights must be fetched)."""
    import open_clip

    kwargs: dict = {"device": "cpu"}
    try:
        if resolved.folder is not None:
            name = f"local-dir:{resolved.folder}"
            model, _, preprocess = open_clip.create_model_and_transforms(name, **kwargs)
            tokenizer = open_clip.get_tokenizer(name)
        elif resolved.arch is not None:
            cfg = resolved.tag_cfg
            if cfg.get("quick_gelu"):
                kwargs["force_quick_gelu"] = True  # the tag was trained with QuickGELU
            for key, arg in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"), ("resize_mode", "image_resize_mode")):
                if key in cfg:
                    kwargs[arg] = cfg[key]
            pretrained = resolved.checkpoint or resolved.tag
            if pretrained is None:
                log.warning("%s: RANDOM weights — for speed measurements only, its verdicts are meaningless", resolved.source)
            model, _, preprocess = open_clip.create_model_and_transforms(resolved.arch, pretrained=pretrained, **kwargs)
            tokenizer = open_clip.get_tokenizer(resolved.arch)
        elif resolved.hub_id is not None:  # hf-hub, online
            name = f"hf-hub:{resolved.hub_id}"
            model, _, preprocess = open_clip.create_model_and_transforms(name, **kwargs)
            tokenizer = open_clip.get_tokenizer(name)
        else:  # pragma: no cover - resolve() never returns this
            raise ModelError(f"nothing to load for {resolved.source}")
    except (ModelError, MemoryError):
        raise
    except FileNotFoundError as exc:
        raise ModelUnavailableError(resolved.source, resolved.where, f"the files are incomplete ({exc})") from exc
    except Exception as exc:
        raise ModelError(f"open_clip could not load '{resolved.source}' from {resolved.where}: {exc}") from exc
    embedder = OpenClipEmbedder(model, preprocess, tokenizer, resolved.source, device=device, dtype=dtype, batch_size=batch_size)
    log.info("loaded %s from %s (dim %d, context %d)", resolved.source, resolved.where, embedder.embed_dim, embedder.context_length)
    return embedder
