"""The model and config flags every evaluating command shares (evaluate, models, batch,
serve, worker), and how they turn into one ``EvaluatorConfig``.

Lives in the core so that the service and batch CLIs can use it without importing the
top-level CLI (imports run one way: cli → service | batch → core).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from imagejury.models.settings import DEVICE_HELP

if TYPE_CHECKING:  # the config (pydantic) loads when a command runs, not for --help
    from imagejury.core.config import EvaluatorConfig


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The model and config flags shared by every command that evaluates."""
    g = p.add_argument_group("models")
    g.add_argument("--config", help="TOML config file (default: $IMAGEJURY_CONFIG)")
    g.add_argument(
        "--clip",
        help="CLIP source: open_clip NAME:TAG (ViT-L-14:openai), NAME:/path/ckpt.pt, local-dir:PATH, "
        "hf-hub:ORG/REPO, or a Hugging Face CLIP/SigLIP folder (default per job class: quick ViT-B-32:openai, "
        "standard ViT-L-14:openai)",
    )
    g.add_argument("--face-backend", choices=["dlib", "insightface"], help="face analyzer (default dlib)")
    g.add_argument("--face-model", help="insightface model-pack folder (e.g. ~/.insightface/models/buffalo_l)")
    g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--aesthetic-head", help="LAION aesthetic predictor MLP weights (.pth/.safetensors)")
    g.add_argument(
        "--allow-missing-models",
        action="store_true",
        default=None,
        help="run without judges whose model is not available here (each is listed as skipped) "
        "instead of failing with processing_failed",
    )


def config_from_args(args: argparse.Namespace) -> EvaluatorConfig:
    """The config file (``--config`` or ``$IMAGEJURY_CONFIG``) with the flags on top.

    Raises ``ConfigError`` (one plain sentence naming the key and the file) when either
    is unusable."""
    from imagejury.core.config import EvaluatorConfig

    config = EvaluatorConfig.from_file(getattr(args, "config", None))
    config = config.with_overrides(
        clip=args.clip,
        face_backend=args.face_backend,
        face_model=args.face_model,
        device=args.device,
        dtype=args.dtype,
        torch_threads=args.threads,
        aesthetic_head=args.aesthetic_head,
    )
    if args.allow_missing_models:
        config = config.model_copy(
            update={"evaluation": config.evaluation.model_copy(update={"allow_missing_models": True})}
        )
    return config
