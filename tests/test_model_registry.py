"""The model registry: one load per key, and a missing model that fails fast without leaking.

Before: the registry cached a ``ModelUnavailableError`` and re-raised the same instance;
each raise chained the caller's frames onto its traceback, so every batch that asked for
a missing model (the normal offline state) stayed alive — its images and feature cache
too (``benchmarks/soak_missing_model.py`` measures the memory).
"""

from __future__ import annotations

import gc
import traceback
import weakref

import pytest

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.registry import ModelRegistry


class _Payload:
    """Stands in for a batch's decoded images: something a caller's frame holds."""


def _missing_loader(calls: list[int]):
    def loader():
        calls.append(1)
        raise ModelUnavailableError("ViT-L-14:openai", "the test's empty cache", "pass --clip PATH")

    return loader


def _ask(reg: ModelRegistry, loader) -> tuple[ModelUnavailableError, weakref.ref]:
    payload = _Payload()  # held by this frame while the registry raises
    try:
        reg.get("clip", "ViT-L-14:openai", loader)
    except ModelUnavailableError as exc:
        return exc, weakref.ref(payload)
    raise AssertionError("the registry did not raise")


def test_a_missing_model_is_looked_for_once_and_answered_fast():
    reg, calls = ModelRegistry(), []
    loader = _missing_loader(calls)
    errors = [_ask(reg, loader)[0] for _ in range(25)]
    assert len(calls) == 1, "the registry searched again for a model it knew was missing"
    assert all(str(e) == str(errors[0]) and e.model == "ViT-L-14:openai" for e in errors)


def test_each_ask_gets_a_fresh_exception_whose_traceback_does_not_grow():
    reg = ModelRegistry()
    loader = _missing_loader([])
    errors = [_ask(reg, loader)[0] for _ in range(25)]
    assert len({id(e) for e in errors}) == len(errors), "one exception instance re-raised"
    depths = [len(traceback.extract_tb(e.__traceback__)) for e in errors[1:]]
    assert max(depths) == min(depths), f"the traceback grows per ask: {depths[:5]}..."


def test_a_failed_ask_does_not_keep_the_callers_frames_alive():
    reg = ModelRegistry()
    loader = _missing_loader([])
    refs = []
    for _ in range(5):
        exc, ref = _ask(reg, loader)
        del exc  # the caller is done with its error
        refs.append(ref)
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} of 5 callers' frames are still held by the registry's cached error"


def test_a_model_that_loads_is_loaded_once_and_shared():
    reg, calls = ModelRegistry(), []

    def loader():
        calls.append(1)
        return object()

    a = reg.get("clip", "x", loader, device="cpu")
    b = reg.get("clip", "x", loader, device="cpu")
    c = reg.get("clip", "x", loader, device="cuda")
    assert a is b and a is not c and len(calls) == 2


def test_the_cached_failure_keeps_its_class_and_facts():
    reg = ModelRegistry()
    with pytest.raises(ModelUnavailableError) as first:
        reg.get("clip", "m", _missing_loader([]))
    with pytest.raises(ModelUnavailableError) as second:
        reg.get("clip", "m", _missing_loader([]))
    assert (second.value.model, second.value.looked, second.value.how) == (
        first.value.model,
        first.value.looked,
        first.value.how,
    )
    assert second.value.failure_code == first.value.failure_code
