"""Typed errors for model loading: a missing model must say what, where and how."""

from __future__ import annotations

from imagejury.errors import FailureCode, ImagejuryError


class ModelError(ImagejuryError):
    """A model could not be loaded or run."""

    failure_code = FailureCode.processing_failed


class ModelUnavailableError(ModelError):
    """The weights for a model are not available on this machine.

    The message names the model, where we looked, and how to supply it, so a user
    offline sees in seconds what to do instead of a hub retry loop.
    """

    def __init__(self, model: str, looked: str, how: str) -> None:
        self.model = model
        self.looked = looked
        self.how = how
        super().__init__(f"model '{model}' is not available: looked in {looked}. To supply it: {how}")
