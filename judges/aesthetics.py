"""aesthetics: how good the image looks, with a documented scale.

Two scorers, chosen by ``ModelSettings.aesthetic_head``:

1. **LAION aesthetic predictor head** (when a path is configured). The format of
   LAION's *improved-aesthetic-predictor*: an MLP ``Linear(D,1024)-Dropout-Linear(1024,128)-
   Dropout-Linear(128,64)-Dropout-Linear(64,16)-Linear(16,1)`` saved as a state dict with
   keys ``layers.0.weight`` ... ``layers.7.bias`` (``.pth`` or ``.safetensors``); its input
   is the L2-normalised CLIP image embedding (D=768, ViT-L-14, for the published
   ``sac+logos+ava1-l14-linearMSE.pth``). The older single-``Linear(D,1)`` head (keys
   ``weight``/``bias``) loads too. Output: a rating on the AVA 1–10 scale. Pass at
   **5.0**: the cut LAION used for the "LAION-Aesthetics v2 5+" subset that Stable
   Diffusion v1 was fine-tuned on. A head whose input size differs from the configured
   CLIP's embedding size is a clear error, never a silent mis-score.
2. **CLIP antonym prompts** (otherwise), as in CLIP-IQA (Wang et al., AAAI 2023): for
   each pair ("a beautiful photo", "an ugly photo"), the softmax with the model's logit
   scale gives P(positive); the score is the mean over the pairs, on 0–1. Pass at
   **0.5**: the image sits closer to the positive than to the negative wording — the
   neutral point of the scale, not a measured cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.clip_scoring import ClipTextJudge, softmax
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.models.errors import ModelError, ModelUnavailableError

log = logging.getLogger(__name__)

MLP_LINEARS = (0, 2, 4, 6, 7)  # indices of the Linear layers in LAION's nn.Sequential
DEFAULT_PAIRS: list[tuple[str, str]] = [
    ("a beautiful photo", "an ugly photo"),
    ("a high quality photo", "a low quality photo"),
    ("an aesthetically pleasing image", "an unappealing image"),
    ("a professional photograph", "an amateur snapshot"),
    ("a well composed picture", "a badly composed picture"),
]


class AestheticMLP(nn.Module):
    """LAION improved-aesthetic-predictor architecture, sized from the state dict."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        d0, d1, d2, d3, d4, d5 = dims
        self.layers = nn.Sequential(
            nn.Linear(d0, d1), nn.Dropout(0.2), nn.Linear(d1, d2), nn.Dropout(0.2),
            nn.Linear(d2, d3), nn.Dropout(0.1), nn.Linear(d3, d4), nn.Linear(d4, d5),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AestheticLinear(nn.Module):
    """LAION's first aesthetic predictor: one linear layer on the CLIP embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class AestheticHead:
    """A loaded head: ``score(embeddings (N, D)) -> (N,)`` ratings on the 1–10 scale."""

    def __init__(self, module: nn.Module, input_dim: int, path: str, fmt: str) -> None:
        self.module = module.eval()
        self.input_dim = input_dim
        self.path = path
        self.format = fmt

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        if embeddings.shape[1] != self.input_dim:
            raise ModelError(
                f"aesthetic head {self.path} expects {self.input_dim}-d embeddings, got {embeddings.shape[1]}-d"
            )
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        with torch.inference_mode():
            return self.module(x).squeeze(-1).double().numpy()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise ModelError(f"aesthetic head {path} is not a readable torch state dict: {exc}") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"aesthetic head {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_aesthetic_head(path: str | Path) -> AestheticHead:
    """Load a LAION aesthetic head, checking its declared layout and every layer's shape."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelUnavailableError(
            "aesthetic head",
            str(p),
            "save LAION's improved-aesthetic-predictor weights (e.g. sac+logos+ava1-l14-linearMSE.pth) on this machine "
            "and pass that path as aesthetic_head; without one, the judge uses CLIP antonym prompts",
        )
    sd = _read_state_dict(p)
    keys = set(sd)
    mlp_keys = {f"layers.{i}.{w}" for i in MLP_LINEARS for w in ("weight", "bias")}
    if keys == mlp_keys:
        ws = [sd[f"layers.{i}.weight"] for i in MLP_LINEARS]
        dims = [int(ws[0].shape[1])] + [int(w.shape[0]) for w in ws]
        for j, (i, w) in enumerate(zip(MLP_LINEARS, ws)):
            if w.ndim != 2 or w.shape[1] != dims[j] or sd[f"layers.{i}.bias"].shape != (dims[j + 1],):
                raise ModelError(
                    f"aesthetic head {p}: layer {i} has shape {tuple(w.shape)}, which does not chain with layer before it"
                )
        if dims[-1] != 1:
            raise ModelError(f"aesthetic head {p}: the last layer outputs {dims[-1]} values, expected 1 (a rating)")
        module: nn.Module = AestheticMLP(dims)
        module.load_state_dict(sd)
        return AestheticHead(module, dims[0], str(p), "laion-mlp")
    if keys == {"weight", "bias"} and sd["weight"].ndim == 2 and sd["weight"].shape[0] == 1:
        dim = int(sd["weight"].shape[1])
        module = AestheticLinear(dim)
        module.linear.load_state_dict(sd)
        return AestheticHead(module, dim, str(p), "laion-linear")
    raise ModelError(
        f"aesthetic head {p} has keys {sorted(keys)[:12]}; expected LAION's MLP layout ({sorted(mlp_keys)}) "
        "or a single linear layer ('weight', 'bias')"
    )


class AestheticsConfig(JudgeConfig):
    head_threshold: float = Field(
        5.0, description="pass rating on the 1-10 scale for a LAION head (LAION-Aesthetics v2 '5+' cut)"
    )
    antonym_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="pass P(positive wording) for antonym prompts (neutral point)"
    )
    antonym_pairs: list[tuple[str, str]] = Field(default_factory=lambda: list(DEFAULT_PAIRS), min_length=1)
    head_confidence_scale: float = Field(1.0, gt=0.0, description="rating distance at which confidence ~0.88")
    antonym_confidence_scale: float = Field(0.15, gt=0.0)


class AestheticsJudge(ClipTextJudge):
    name = "aesthetics"
    category = "aesthetics"
    description = (
        "How good the image looks: a LAION aesthetic head on CLIP features if supplied, else CLIP antonym prompts."
    )
    default_weight = 0.5
    version = "1"
    Config = AestheticsConfig
    config: AestheticsConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._head: AestheticHead | None = None

    def warmup(self) -> None:
        super().warmup()
        path = self.model_set.settings.aesthetic_head
        if path:
            head = self.model_set.registry.get(
                "aesthetic_head", str(path), lambda: load_aesthetic_head(path), weights=str(path)
            )
            dim = int(self.embedder.embed_dim)
            if head.input_dim != dim:
                raise ModelError(
                    f"aesthetic head {path} takes {head.input_dim}-d CLIP image embeddings, but the configured CLIP "
                    f"'{self.clip_source}' gives {dim}-d. LAION's published MLP needs ViT-L-14 (--clip ViT-L-14:openai); "
                    "use that model or a head trained on this CLIP's embeddings"
                )
            self._head = head

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        if self._embedder is None:
            self.warmup()
        images = self.image_embeddings(batch)
        if self._head is not None:
            return [self._head_result(float(r)) for r in self._head.score(images)]
        pairs = self.config.antonym_pairs
        emb = self.text_embeddings(batch, [t for pair in pairs for t in pair])
        pos = np.stack([emb[p] for p, _ in pairs])
        neg = np.stack([emb[n] for _, n in pairs])
        scale = self.logit_scale
        out = []
        for v in images:
            logits = scale * np.stack([pos @ v, neg @ v], axis=1)  # (pairs, 2)
            p_pos = softmax(logits)[:, 0]
            out.append(self._antonym_result(p_pos, scale))
        return out

    def _head_result(self, rating: float) -> JudgeResult:
        t = self.config.head_threshold
        assert self._head is not None
        passed = rating >= t
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(rating - t, self.config.head_confidence_scale),
            reasoning=f"LAION aesthetic head ({self._head.format}) rates {rating:.2f} on the 1-10 scale; pass at {t:.1f} "
            "(the LAION-Aesthetics v2 5+ cut).",
            score=round(rating, 4),
            threshold=t,
            evidence=[f"aesthetic rating {rating:.3f} from {Path(self._head.path).name}"],
            measurements=[
                Measurement(
                    "aesthetic_rating",
                    rating,
                    t,
                    True,
                    "LAION aesthetic rating, 1-10",
                    model=f"{Path(self._head.path).name} on {self.clip_source}",
                )
            ],
            decision_rule="all",
            issues=[] if passed else [JudgeIssue("aesthetics", f"low aesthetic rating {rating:.2f} < {t:.1f}", 0.6)],
            strengths=[f"aesthetic rating {rating:.1f}"] if passed else [],
        )

    def _antonym_result(self, p_pos: np.ndarray, scale: float) -> JudgeResult:
        t = self.config.antonym_threshold
        score = float(np.mean(p_pos))
        passed = score >= t
        ev = [f"P('{p}' over '{n}') = {q:.3f}" for (p, n), q in zip(self.config.antonym_pairs, p_pos)]
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(score - t, self.config.antonym_confidence_scale),
            reasoning=f"No aesthetic head configured: CLIP antonym prompts give {score:.2f} on a 0-1 scale "
            f"(mean P(positive) over {len(p_pos)} pairs, logit scale {scale:.1f}); pass at {t:.2f}, the neutral point.",
            score=round(score, 4),
            threshold=t,
            evidence=ev,
            measurements=[
                Measurement(
                    "antonym_score",
                    score,
                    t,
                    True,
                    "mean P(positive wording) over antonym pairs",
                    model=self.clip_source,
                )
            ],
            decision_rule="all",
            issues=[]
            if passed
            else [JudgeIssue("aesthetics", f"looks more like the negative wording (score {score:.2f} < {t:.2f})", 0.6)],
            strengths=[f"aesthetic score {score:.2f}"] if passed else [],
        )
