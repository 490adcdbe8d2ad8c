"""Load the image–text embedder a CLIP source names: resolve it, then pick the backend.

Kept apart from ``sources`` (which only decides where weights are) so that the backends
can import ``sources.Resolved`` and this module can import the backends, with no cycle.
"""

from __future__ import annotations

from imagejury.models.clip.sources import resolve
from imagejury.models.interfaces import ImageTextEmbedder


def load_embedder(
    source: str,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 32,
) -> ImageTextEmbedder:
    """Load the embedder for ``source`` (see the module docstring for the grammar)."""
    resolved = resolve(source)
    if resolved.backend == "open_clip":
        from imagejury.models.clip.openclip import load_open_clip

        return load_open_clip(resolved, device=device, dtype=dtype, batch_size=batch_size)
    from imagejury.models.clip.hf import load_hf_clip

    return load_hf_clip(resolved, device=device, dtype=dtype, batch_size=batch_size)
