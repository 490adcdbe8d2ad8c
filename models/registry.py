"""One process-wide registry: each model is loaded once, lazily, thread-safely.

Keyed by (kind, name, weights, device, dtype) so two judges that ask for the same CLIP
get the same object — and, through the feature cache, one forward pass per image.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from imagejury.models.errors import ModelUnavailableError

log = logging.getLogger(__name__)

RegistryKey = tuple[str, str, str, str, str]


class ModelRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[RegistryKey, threading.Lock] = {}
        self._models: dict[RegistryKey, Any] = {}
        self._failures: dict[RegistryKey, ModelUnavailableError] = {}  # tracebackless facts
        self.load_counts: dict[RegistryKey, int] = {}

    def get(
        self,
        kind: str,
        name: str,
        loader: Callable[[], Any],
        *,
        weights: str = "",
        device: str = "cpu",
        dtype: str = "float32",
    ) -> Any:
        """Return the cached model for the key, calling ``loader`` at most once.

        A ``ModelUnavailableError`` is cached too: asking again for a model that is not
        there answers at once instead of searching again. What is cached is the failure's
        facts, and every ask raises a *fresh* exception: re-raising one instance would
        chain each raise's traceback onto it, keeping every caller's frames (a batch's
        decoded images, its feature cache) alive for as long as the registry lives.
        """
        key: RegistryKey = (kind, name, weights, device, dtype)
        if key in self._models:
            return self._models[key]
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key in self._models:
                return self._models[key]
            if key in self._failures:
                raise _fresh(self._failures[key])
            log.info("loading model %s", key)
            try:
                model = loader()
            except ModelUnavailableError as exc:
                self._failures[key] = _fresh(exc)  # no traceback: the loader's frames may go
                raise
            self._models[key] = model
            self.load_counts[key] = self.load_counts.get(key, 0) + 1
            return model

    def loaded(self) -> list[RegistryKey]:
        return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._failures.clear()
            self._key_locks.clear()
            self.load_counts.clear()


def _fresh(exc: ModelUnavailableError) -> ModelUnavailableError:
    """A new exception with the same facts (model, where we looked, how to supply it),
    carrying no traceback, cause or context (a subclass keeps its class)."""
    new = type(exc).__new__(type(exc), *exc.args)
    new.args = exc.args
    new.__dict__.update(exc.__dict__)
    return new


_default = ModelRegistry()


def default_registry() -> ModelRegistry:
    return _default
