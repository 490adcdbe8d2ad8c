"""Resolve a CLIP source string to local weights and load the matching backend.

Source grammar (see ``imagejury.models.settings.ModelSettings``):

- ``NAME:TAG``            open_clip architecture + pretrained tag (``ViT-B-32:openai``)
- ``NAME:/path/ckpt.pt``  open_clip architecture + local checkpoint file
- ``local-dir:PATH``      open_clip folder (``open_clip_config.json`` + weights)
- ``hf-hub:ORG/REPO``     open_clip model on the Hugging Face hub or in its cache
- ``hf:PATH_OR_ID``       transformers ``CLIPModel`` / ``SiglipModel`` (folder or hub id)
- a folder path           ``open_clip_config.json`` → open_clip, ``config.json`` → transformers

Why this module exists: a missing model must fail in seconds with a message that says
what, where and how — never a hub retry loop (an offline hub lookup otherwise spends ~46 s
in DNS retries, see FINDINGS.md). So resolution only ever looks at local files and caches;
the network is touched only when ``HF_HUB_OFFLINE`` is unset *and* a 3-second probe shows
the host is reachable, and then through the libraries' own download code.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.settings import ModelSettings

log = logging.getLogger(__name__)

LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"
HF = "hf:"
OPEN_CLIP_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
HF_WEIGHT_NAMES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
PROBE_TIMEOUT_S = 3.0


@dataclass
class Resolved:
    """Where a source's weights are, decided without loading them."""

    backend: str  # "open_clip" | "hf"
    source: str
    where: str  # human-readable location (a path, or "download from ...")
    arch: str | None = None  # open_clip architecture name
    checkpoint: str | None = None  # open_clip checkpoint file
    folder: str | None = None  # open_clip local-dir or transformers folder
    hub_id: str | None = None  # set only when the weights must be downloaded
    tag: str | None = None
    tag_cfg: dict = field(default_factory=dict)


# -- caches -------------------------------------------------------------------------
def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def open_clip_url_cache() -> Path:
    """Where open_clip keeps checkpoints it downloads by URL (its own default)."""
    return Path("~/.cache/clip").expanduser()


def cached_hub_file(repo_id: str, filename: str) -> str | None:
    """Path of ``filename`` of ``repo_id`` in the local hub cache, or None. No network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hf_hub_cache()))
    except Exception as exc:  # malformed repo ids raise validation errors
        log.debug("cache lookup failed for %s/%s: %s", repo_id, filename, exc)
        return None
    return found if isinstance(found, str) and os.path.isfile(found) else None


def download_allowed(host_url: str) -> bool:
    """True when the user is online: ``HF_HUB_OFFLINE`` unset and ``host`` answers within 3 s."""
    if ModelSettings.hf_offline():
        return False
    parsed = urlparse(host_url)
    host = parsed.hostname or host_url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    result: dict[str, bool] = {}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores timeouts
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    ok = result.get("ok", False)
    if not ok:
        log.info("%s is not reachable; using local files only", host)
    return ok


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def _offline_note(allow_download: bool = True) -> str:
    if ModelSettings.hf_offline():
        return "HF_HUB_OFFLINE=1 is set"
    return "the hub was not reachable" if allow_download else "only local files were checked"


# -- resolution -----------------------------------------------------------------------
def resolve(source: str, allow_download: bool = True) -> Resolved:
    """Decide backend and weight location for ``source``; raises ModelUnavailableError fast.

    With ``allow_download=False`` nothing touches the network (not even the reachability probe).
    """
    if not isinstance(source, str) or not source.strip():
        raise ModelError(f"empty or invalid CLIP source {source!r}; see `imagejury models` for the grammar")
    source = source.strip()
    if source.startswith(RANDOM):
        return _resolve_random(source, source[len(RANDOM) :])
    if source.startswith(LOCAL_DIR):
        return _resolve_local_dir(source, source[len(LOCAL_DIR) :])
    if source.startswith(HF_HUB):
        return _resolve_open_clip_hub(source, source[len(HF_HUB) :], allow_download)
    if source.startswith(HF):
        return _resolve_hf(source, source[len(HF) :], allow_download)
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return _resolve_local_dir(source, str(path))
        if (path / "config.json").is_file():
            return _resolve_hf(source, str(path), allow_download)
        raise ModelUnavailableError(
            source,
            f"folder {path} (it has neither open_clip_config.json nor config.json)",
            "point at an open_clip folder (open_clip_config.json + weights) or a transformers folder saved with save_pretrained",
        )
    if ":" in source:
        name, rest = source.split(":", 1)
        if _looks_like_path(rest):
            return _resolve_checkpoint(source, name, rest)
        return _resolve_tag(source, name, rest, allow_download)
    if "/" in source or source.startswith((".", "~")):
        raise ModelUnavailableError(source, f"the folder {path} (it does not exist)", "check the path")
    raise ModelError(
        f"CLIP source '{source}' has no weights: use NAME:TAG (e.g. ViT-B-32:openai), NAME:/path/to/checkpoint, "
        "local-dir:PATH, hf-hub:ORG/REPO or hf:PATH_OR_ID — imagejury never runs randomly initialised weights"
    )


RANDOM = "random:"


def _resolve_random(source: str, name: str) -> Resolved:
    """``random:NAME``: the real open_clip architecture with random weights.

    For speed figures only (benchmarks): the forward pass costs what the real model
    costs, but every verdict it gives is meaningless — a warning says so at load.
    """
    arch = _open_clip_name(name)
    return Resolved(
        "open_clip", source, "random initialisation (speed benchmarks only; verdicts are meaningless)", arch=arch
    )


def _looks_like_path(rest: str) -> bool:
    return "/" in rest or "\\" in rest or rest.startswith((".", "~")) or rest.lower().endswith(_CHECKPOINT_SUFFIXES)


def _open_clip_name(name: str) -> str:
    import open_clip

    cleaned = name.replace("/", "-")
    if cleaned not in open_clip.list_models():
        raise ModelError(
            f"'{name}' is not an open_clip architecture (for example ViT-B-32, ViT-L-14, RN50; "
            "see open_clip.list_models())"
        )
    return cleaned


def _resolve_local_dir(source: str, folder: str) -> Resolved:
    path = Path(folder).expanduser()
    config = path / "open_clip_config.json"
    how = (
        "pass local-dir:PATH to a folder holding open_clip_config.json (with model_cfg) and open_clip_model.safetensors"
    )
    if not path.is_dir():
        raise ModelUnavailableError(source, f"the folder {path} (it does not exist)", how)
    if not config.is_file():
        raise ModelUnavailableError(source, f"{config} (missing)", how)
    try:
        if "model_cfg" not in json.loads(config.read_text(encoding="utf-8")):
            raise ModelError(f"{config} has no 'model_cfg' entry; it is not an open_clip hub-format config")
    except json.JSONDecodeError as exc:
        raise ModelError(f"{config} is not valid JSON: {exc}") from exc
    weights = [path / n for n in OPEN_CLIP_WEIGHT_NAMES if (path / n).is_file()]
    if not weights:
        raise ModelUnavailableError(source, f"{path} (no weights among {', '.join(OPEN_CLIP_WEIGHT_NAMES)})", how)
    return Resolved("open_clip", source, str(weights[0]), folder=str(path.resolve()), checkpoint=str(weights[0]))


def _resolve_open_clip_hub(source: str, repo: str, allow_download: bool) -> Resolved:
    if not repo or repo.count("/") != 1:
        raise ModelError(f"hf-hub source needs ORG/REPO, got '{repo}'")
    config = cached_hub_file(repo, "open_clip_config.json")
    weights = next((w for n in OPEN_CLIP_WEIGHT_NAMES[:4] if (w := cached_hub_file(repo, n))), None)
    if config and weights:
        folder = str(Path(config).parent)
        return Resolved("open_clip", source, weights, folder=folder, checkpoint=weights)
    looked = f"the Hugging Face cache {hf_hub_cache()} (repo {repo})"
    if allow_download and download_allowed(_hub_endpoint()):
        return Resolved("open_clip", source, f"download from {_hub_endpoint()}/{repo}", hub_id=repo)
    raise ModelUnavailableError(
        source,
        f"{looked}; {_offline_note(allow_download)}",
        f"download it once online (open_clip.create_model_and_transforms('hf-hub:{repo}')) and copy the "
        "Hugging Face cache here (set HF_HOME to it), or save the folder and pass local-dir:PATH",
    )


def _resolve_checkpoint(source: str, name: str, file: str) -> Resolved:
    arch = _open_clip_name(name)
    path = Path(file).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(
            source,
            f"the checkpoint file {path} (it does not exist)",
            f"check the path, or use a pretrained tag such as {arch}:openai once it is in the cache",
        )
    return Resolved("open_clip", source, str(path.resolve()), arch=arch, checkpoint=str(path.resolve()))


def _resolve_tag(source: str, name: str, tag: str, allow_download: bool) -> Resolved:
    import open_clip

    arch = _open_clip_name(name)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(f"'{tag}' is not a pretrained tag of {arch}; known tags: {', '.join(tags) or 'none'}")
    looked: list[str] = []
    places: list[str] = []
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for n in names:
            found = cached_hub_file(repo, n)
            if found:
                return Resolved("open_clip", source, found, arch=arch, checkpoint=found, tag=tag, tag_cfg=cfg)
        looked.append(f"the Hugging Face cache {hf_hub_cache()} (repo {repo}, {' or '.join(names)})")
    url = cfg.get("url", "")
    if url:
        target = open_clip_url_cache() / os.path.basename(urlparse(url).path)
        if target.is_file():
            return Resolved("open_clip", source, str(target), arch=arch, checkpoint=str(target), tag=tag, tag_cfg=cfg)
        looked.append(str(target))
        places.append(f"put the checkpoint file ({url}) at {target}")
    host = _hub_endpoint() if hub else url
    if allow_download and (hub or url) and download_allowed(host):
        return Resolved(
            "open_clip", source, f"download from {host}", arch=arch, tag=tag, tag_cfg=cfg, hub_id=hub or url
        )
    how = [
        f"download it once online (python -c \"import open_clip; open_clip.create_model_and_transforms('{arch}', "
        f"pretrained='{tag}')\") and copy the Hugging Face cache here (set HF_HOME to it)",
        *places,
        f"pass --clip {arch}:/path/to/checkpoint",
    ]
    if ModelSettings.hf_offline():
        how.append("on a machine with internet, unset HF_HUB_OFFLINE so it is downloaded on first use")
    raise ModelUnavailableError(source, "; ".join(looked) + f"; {_offline_note(allow_download)}", "; or ".join(how))


def _resolve_hf(source: str, ref: str, allow_download: bool) -> Resolved:
    if not ref:
        raise ModelError("hf: source needs a folder or a hub id (hf:openai/clip-vit-base-patch32)")
    path = Path(ref).expanduser()
    how = "save the model with CLIPModel.save_pretrained(folder) (plus its processor) and pass hf:FOLDER"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailableError(source, f"{path / 'config.json'} (missing)", how)
        if not any((path / n).is_file() for n in HF_WEIGHT_NAMES):
            raise ModelUnavailableError(source, f"{path} (no weights among {', '.join(HF_WEIGHT_NAMES)})", how)
        return Resolved("hf", source, str(path.resolve()), folder=str(path.resolve()))
    if ref.startswith(("/", ".", "~")) or ref.count("/") != 1:
        raise ModelUnavailableError(source, f"the folder {path} (it does not exist)", how)
    config = cached_hub_file(ref, "config.json")
    weights = next((w for n in HF_WEIGHT_NAMES if (w := cached_hub_file(ref, n))), None)
    if config and weights:
        folder = str(Path(config).parent)
        return Resolved("hf", source, folder, folder=folder)
    if allow_download and download_allowed(_hub_endpoint()):
        return Resolved("hf", source, f"download from {_hub_endpoint()}/{ref}", hub_id=ref)
    raise ModelUnavailableError(
        source,
        f"the Hugging Face cache {hf_hub_cache()} (repo {ref}); {_offline_note(allow_download)}",
        f"download it once online (CLIPModel.from_pretrained('{ref}')) and copy the cache here (set HF_HOME), or {how}",
    )


# -- public -------------------------------------------------------------------------
def locate_embedder(source: str) -> str:
    """Where the weights for ``source`` are, without loading them.

    Looks only at local files and caches; raises ModelUnavailableError within seconds
    when they are not here (and says so even when a download would be possible).
    """
    return resolve(source, allow_download=False).where
