"""Image–text embedders (CLIP, SigLIP) behind ``ImageTextEmbedder``.

``sources`` decides where a source's weights are (never loading them); ``loader`` loads
the backend that fits (``openclip`` or ``hf``); ``base`` is what both backends share.
"""

from imagejury.models.clip.loader import load_embedder
from imagejury.models.clip.sources import locate_embedder

__all__ = ["load_embedder", "locate_embedder"]
