"""Pytest fixtures for image–text embedders: the committed tiny CLIP and tiny HF folders.

Why: tests must exercise the real loading code of both backends with no download. The
OpenCLIP side uses the committed checkpoint in ``tests/assets/tiny_shapes_clip`` (trained by
``scripts/train_tiny_clip.py``); the transformers side gets a tiny randomly initialised
``CLIPModel`` folder built here with a real CLIP tokenizer made from the BPE file that
open_clip ships (it yields the same ids as open_clip, FINDINGS.md).

Import into a test module or conftest with ``from tests.support.clip_fixtures import *``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

__all__ = [
    "TINY_CLIP_DIR",
    "TINY_CLIP_SOURCE",
    "build_clip_tokenizer",
    "build_hf_clip_folder",
    "build_hf_siglip_folder",
    "tiny_clip",
    "tiny_hf_clip_dir",
    "mismatched_hf_clip_dir",
    "tiny_hf_siglip_dir",
    "offline_empty_caches",
    "put_in_hub_cache",
]

TINY_CLIP_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_shapes_clip"
TINY_CLIP_SOURCE = f"local-dir:{TINY_CLIP_DIR}"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-printable mapping (same table as open_clip.tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_clip_tokenizer():
    """A transformers ``CLIPTokenizer`` with OpenAI CLIP's 49,408-token vocabulary, offline."""
    import open_clip.tokenizer as oct
    from transformers import CLIPTokenizer

    with gzip.open(oct.default_bpe()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    base = list(_bytes_to_unicode().values())
    vocab_list = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges])


def build_hf_clip_folder(folder: Path, text_vocab_size: int = 49408, seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel`` + processor + tokenizer into ``folder``.

    ``text_vocab_size`` other than 49,408 makes a folder whose tokenizer does not match its
    model — the case the backend must refuse.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": text_vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=24,
    )
    model = CLIPModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    build_clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_hf_siglip_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny random ``SiglipModel`` folder, to exercise the SigLIP code path (padding to the
    full context, no attention mask). Real SigLIP uses a sentencepiece vocabulary; the CLIP BPE
    stands in here because it can be built offline."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    )
    model = SiglipModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    build_clip_tokenizer().save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def put_in_hub_cache(hub_cache: Path, repo_id: str, folder: Path, commit: str = "0" * 40) -> Path:
    """Copy ``folder`` into a Hugging Face hub cache as if ``repo_id`` had been downloaded."""
    import shutil

    repo_dir = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in Path(folder).iterdir():
        if f.is_file():
            shutil.copy(f, snapshot / f.name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def tiny_clip():
    """The committed tiny shapes CLIP, loaded through ``load_embedder('local-dir:...')``."""
    import torch

    from imagejury.models.clip import load_embedder

    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_embedder(TINY_CLIP_SOURCE)


@pytest.fixture(scope="session")
def tiny_hf_clip_dir(tmp_path_factory) -> Path:
    return build_hf_clip_folder(tmp_path_factory.mktemp("tiny_hf_clip"))


@pytest.fixture(scope="session")
def mismatched_hf_clip_dir(tmp_path_factory) -> Path:
    return build_hf_clip_folder(tmp_path_factory.mktemp("mismatched_hf_clip"), text_vocab_size=1000)


@pytest.fixture(scope="session")
def tiny_hf_siglip_dir(tmp_path_factory) -> Path:
    return build_hf_siglip_folder(tmp_path_factory.mktemp("tiny_hf_siglip"))


@pytest.fixture
def offline_empty_caches(tmp_path, monkeypatch) -> Path:
    """HF_HUB_OFFLINE=1 and every model cache pointed at an empty temporary folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    assert not os.path.exists(tmp_path / "hf")
    return tmp_path
