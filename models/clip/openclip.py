"""OpenCLIP backend: any open_clip model, from local weights resolved by ``clip_loader``.

Why open_clip: it is what most users already run for CLIP scores, it ships the CLIP BPE,
and its ``local-dir:`` folder format lets the project's tiny test model load through the
same code path as real weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from PIL import Image

from imagejury.models.clip.base import EmbedderBase
from imagejury.models.clip.sources import Resolved
from imagejury.models.errors import ModelError, ModelUnavailableError

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
        if self._can_trim:
            return self._encode_text_trimmed(tokens)
        return self.model.encode_text(tokens)

    @property
    def _can_trim(self) -> bool:
        """Whether padding can be cut off the token batch without changing any output.

        True for open_clip's ``CLIP`` text tower with a causal mask and a pooling that reads
        a token at or before the end-of-text token: no position attends to the padding after
        it, so running only up to the batch's longest sequence gives the same features. A
        short prompt is ~10 of 77 tokens, so the text tower — most of the work of the
        prompt judges — runs several times faster.
        """
        m = self.model
        return (
            getattr(m, "attn_mask", None) is not None
            and getattr(m, "text_pool_type", None) in ("argmax", "first", "eos")
            and all(hasattr(m, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))
        )

    def _encode_text_trimmed(self, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        m = self.model
        nonpad = (tokens != 0).any(dim=0).nonzero()
        length = int(nonpad.max().item()) + 1 if nonpad.numel() else 1
        t = tokens[:, :length]
        cast_dtype = m.transformer.get_cast_dtype()
        x = m.token_embedding(t).to(cast_dtype) + m.positional_embedding[:length].to(cast_dtype)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = text_global_pool(x, t, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
        return x


def load_open_clip(
    resolved: Resolved, device: str = "cpu", dtype: str = "float32", batch_size: int = 32
) -> OpenClipEmbedder:
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
            for key, arg in (
                ("mean", "image_mean"),
                ("std", "image_std"),
                ("interpolation", "image_interpolation"),
                ("resize_mode", "image_resize_mode"),
            ):
                if key in cfg:
                    kwargs[arg] = cfg[key]
            pretrained = resolved.checkpoint or resolved.tag
            if pretrained is None:
                log.warning(
                    "%s: RANDOM weights — for speed measurements only, its verdicts are meaningless", resolved.source
                )
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
    embedder = OpenClipEmbedder(
        model, preprocess, tokenizer, resolved.source, device=device, dtype=dtype, batch_size=batch_size
    )
    log.info(
        "loaded %s from %s (dim %d, context %d)",
        resolved.source,
        resolved.where,
        embedder.embed_dim,
        embedder.context_length,
    )
    return embedder
