"""Streaming library calls: evaluate_iter / evaluate_many hold one batch at a time."""

from __future__ import annotations

import pytest

from imagejury.core.pipeline import Evaluator
from imagejury.errors import InvalidRequestError
from tests.support import pipeline_judges as pj
from tests.test_pipeline import _req


def _evaluator(batch_size: int) -> Evaluator:
    return Evaluator(pj.make_config(["t_redness"], batch_size=batch_size), judges=pj.make_registry())


def test_evaluate_iter_reads_one_batch_ahead_and_keeps_order() -> None:
    ev = _evaluator(batch_size=3)
    consumed: list[int] = []

    def requests():
        for i in range(7):
            consumed.append(i)
            yield _req((220, 10, 10) if i % 2 == 0 else (10, 10, 220))

    results = ev.evaluate_iter(requests())
    first = next(results)
    assert len(consumed) == 3  # only the first batch was read before its results came out
    rest = list(results)
    assert len(consumed) == 7 and len(rest) == 6
    assert [e.overall_passed for e in [first, *rest]] == [i % 2 == 0 for i in range(7)]


def test_decoded_items_are_released_between_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """No more than one batch of prepared (decoded) items is alive at any time."""
    import weakref

    ev = _evaluator(batch_size=2)
    alive: list[weakref.ref] = []
    peak = [0]
    real_prepare = ev.prepare

    def tracking_prepare(request, *a, **k):  # type: ignore[no-untyped-def]
        p = real_prepare(request, *a, **k)
        alive.append(weakref.ref(p.item))
        peak[0] = max(peak[0], sum(r() is not None for r in alive))
        return p

    monkeypatch.setattr(ev, "prepare", tracking_prepare)
    out = ev.evaluate_many(_req() for _ in range(9))  # a generator: consumed lazily
    assert len(out) == 9 and peak[0] <= 2 + 2  # the batch being built + at most the one just judged


def test_invalid_request_in_a_stream_names_its_position() -> None:
    ev = _evaluator(batch_size=2)
    stream = ev.evaluate_iter(iter([_req(), _req(), {"task_type": "image_generation"}]))
    assert len([next(stream), next(stream)]) == 2
    with pytest.raises(InvalidRequestError, match=r"requests\[2\]"):
        next(stream)
