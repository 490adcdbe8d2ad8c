"""Judges are found through the entry-point group ``imagejury.judges`` — built-ins too.

A third party adds a judge with one ``pyproject.toml`` line and no fork. Entries load
lazily; a bad entry fails loudly with its name, never silently.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from imagejury.errors import ImagejuryError
from imagejury.judges.base import Judge

log = logging.getLogger(__name__)

GROUP = "imagejury.judges"


class JudgeRegistryError(ImagejuryError):
    pass


class JudgeRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, object] | None = None
        self._classes: dict[str, type[Judge]] = {}

    def _discover(self) -> dict[str, object]:
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._entries = {ep.name: ep for ep in entry_points(group=GROUP)}
        return self._entries

    def names(self) -> list[str]:
        return sorted(set(self._discover()) | set(self._classes))

    def register(self, cls: type[Judge]) -> type[Judge]:
        """Register a class directly (tests, notebooks); entry points are the normal way."""
        _check(cls.__name__, cls)
        self._classes[cls.name] = cls
        return cls

    def get(self, name: str) -> type[Judge]:
        if name in self._classes:
            return self._classes[name]
        entries = self._discover()
        if name not in entries:
            raise JudgeRegistryError(
                f"no judge named '{name}' (known: {', '.join(self.names())}); "
                f"is the package that provides it installed (entry-point group '{GROUP}')?"
            )
        ep = entries[name]
        try:
            cls = ep.load()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - re-raised with the entry named
            raise JudgeRegistryError(f"judge entry point '{name}' ({ep.value}) failed to load: {exc}") from exc  # type: ignore[attr-defined]
        _check(name, cls)
        if cls.name != name:
            raise JudgeRegistryError(f"entry point '{name}' loads a judge named '{cls.name}'")
        self._classes[name] = cls
        return cls

    def all(self) -> dict[str, type[Judge]]:
        return {n: self.get(n) for n in self.names()}


def _check(name: str, cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Judge)):
        raise JudgeRegistryError(f"judge entry '{name}' is not a Judge subclass: {cls!r}")
    for attr in ("name", "category"):
        if not getattr(cls, attr, None):
            raise JudgeRegistryError(f"judge '{name}' lacks the class attribute '{attr}'")


judge_registry = JudgeRegistry()
