"""Test-wide settings: offline, few threads, and the shared fixtures."""

from __future__ import annotations

import os

# never let a test reach for a model hub: offline lookups fail in milliseconds
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(int(os.environ.get("IMAGEJURY_TEST_THREADS", "2")))
except ImportError:  # pragma: no cover - torch is a core dependency
    pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = False
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        pass
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
