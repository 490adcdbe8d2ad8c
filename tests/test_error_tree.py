"""One error tree: every exception class imagejury defines derives from ``ImagejuryError``,
carries a ``FailureCode``, and is raised somewhere (no dead error classes)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import imagejury
from imagejury.errors import FailureCode, ImagejuryError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = "\n".join(
    p.read_text() for folder in ("evaluator", "judges", "models") for p in (ROOT / folder).rglob("*.py")
)


def _modules() -> list[str]:
    names = ["imagejury"]
    for package in ("imagejury", "imagejury.judges", "imagejury.models"):
        pkg = importlib.import_module(package)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=package + ".")]
    return sorted(set(names) - {"imagejury.__main__"})


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{attr}"] = obj
    return found


def test_every_error_class_derives_from_the_base_and_has_a_code() -> None:
    classes = _error_classes()
    assert len(classes) >= 10, sorted(classes)
    outside = [n for n, c in classes.items() if not issubclass(c, ImagejuryError)]
    assert not outside, f"error classes outside ImagejuryError: {outside}"
    assert all(isinstance(c.failure_code, FailureCode) for c in classes.values())  # type: ignore[attr-defined]


def test_no_error_class_is_dead() -> None:
    """Each class is raised (``raise Name(``), built to be returned, or a base of another."""
    classes = _error_classes()
    bases = {b for c in classes.values() for b in c.__mro__[1:]}
    dead = []
    for qualname, cls in classes.items():
        name = cls.__name__
        used = re.search(rf"\b{name}\(", SOURCES.replace(f"class {name}(", ""))
        if not used and cls not in bases:
            dead.append(qualname)
    assert not dead, f"error classes nothing raises: {dead}"


def test_package_root_reexports_the_base() -> None:
    assert imagejury.ImagejuryError is ImagejuryError and imagejury.FailureCode is FailureCode
