"""On an accelerator the pixel signals measure all same-size working copies of a request
batch together (``working.measuring_groups``): every operation is launched once for the
group, with per-image offsets in the histograms and per-image reductions. Forcing that
grouping on CPU must give every image exactly what it gets when measured alone."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from imagejury.models.quality import create_scorer, signals, working
from imagejury.models.quality.working import WorkingCopy, make_working_copies
from tests.support import graphics, photos


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    """Same-size images whose signals differ in every way the report can: textured and
    flat, sharp and blurred, clean and noisy, blown highlights, banding, JPEG blocks; and
    one of another size, which must form its own group."""
    base = photos.photo("astronaut").resize((208, 176))
    flat = Image.new("RGB", base.size, (120, 130, 140))  # no edges: sharpness not measured
    return [
        base,
        photos.blur(base, 3.0),
        photos.noise(base, 12.0),
        photos.exposure(base, 2.5),  # blown highlights: soft clip
        graphics.banding(graphics.graphic("gradient_icon", 3, 208).resize(base.size), 6),
        photos.jpeg(base, 8),
        flat,
        photos.photo("coffee").resize((160, 208)),
    ]


def _assert_same_report(alone: signals.SignalReport, together: signals.SignalReport, label: str) -> None:
    for field, value in alone.__dict__.items():
        other = getattr(together, field)
        if isinstance(value, float) and not (isinstance(other, float) and math.isnan(other) and math.isnan(value)):
            assert other == pytest.approx(value, rel=1e-9, abs=1e-12), (label, field)
        else:
            assert other == value, (label, field)


def test_grouped_signals_equal_signals_measured_alone(images, monkeypatch) -> None:
    alone = [signals.measure_copy(make_working_copies([im])[0]) for im in images]
    monkeypatch.setattr(working, "GROUP_ON_CPU", True)  # group as on an accelerator
    copies = make_working_copies(images)
    assert sorted(len(g) for g in working.measuring_groups(copies)) == [1, len(images) - 1]
    together = signals.measure_copies(copies)
    for i, (a, b) in enumerate(zip(alone, together)):
        _assert_same_report(a, b, f"image {i}")
    # the cases really differ, so a per-image mix-up would show
    assert alone[6].edge_sharpness is None and alone[0].edge_sharpness is not None
    assert alone[3].soft_clip != alone[0].soft_clip
    assert alone[4].false_contours > 10 * max(alone[0].false_contours, 0.01)
    assert alone[2].noise_sigma > 2 * alone[0].noise_sigma


@pytest.mark.parametrize("name", ["niqe", "piqe", "brisque_pypi"])
def test_grouped_nss_scores_equal_scores_alone(images, name, monkeypatch) -> None:
    """NIQE, PIQE and BRISQUE of a group: the same value and details per image as alone,
    at a size none of them divides evenly (NIQE's crop strips, PIQE's padded canvas), with
    a flat image in the group whose NIQE is undefined."""
    sized = [im.resize((330, 250)) for im in images[:-1]] + [images[-1].resize((250, 330))]
    scorer = create_scorer(name)
    alone = [scorer.score([im])[0] for im in sized]
    monkeypatch.setattr(working, "GROUP_ON_CPU", True)
    together = scorer.score(make_working_copies(sized))
    for i, (a, b) in enumerate(zip(alone, together)):
        assert (math.isnan(a.value) and math.isnan(b.value)) or b.value == pytest.approx(a.value, rel=1e-6), i
        assert b.details.keys() == a.details.keys(), i
        for key, value in a.details.items():
            if isinstance(value, float):
                assert b.details[key] == pytest.approx(value, rel=1e-6, nan_ok=True), (i, key)
            else:
                assert b.details[key] == value, (i, key)
    if name == "niqe":
        assert math.isnan(alone[6].value) and not math.isnan(alone[0].value)


def test_grouped_canvas_planes_equal_planes_computed_alone(images, monkeypatch) -> None:
    alone = [make_working_copies([im])[0].canvas_stats() for im in images]
    monkeypatch.setattr(working, "GROUP_ON_CPU", True)
    copies = make_working_copies(images)
    for group in working.measuring_groups(copies):  # as the measures do: one group at a time
        working.group_planes([copies[i] for i in group])
    for i, (copy, planes) in enumerate(zip(copies, alone)):
        for got, want in zip(copy.canvas_stats(), planes):
            assert torch.equal(got, want), i


def test_accelerator_copies_of_one_size_are_grouped_cpu_copies_are_not() -> None:
    def copy(h: int, w: int, device: str) -> WorkingCopy:
        return WorkingCopy(
            torch.empty(3, h, w, dtype=torch.uint8, device=device), torch.empty(h, w, device=device), (w, h)
        )

    meta = [copy(16, 20, "meta"), copy(16, 24, "meta"), copy(16, 20, "meta"), copy(20, 16, "meta")]
    assert working.measuring_groups(meta) == [[0, 2], [1], [3]]
    cpu = [copy(16, 20, "cpu"), copy(16, 20, "cpu")]
    assert working.measuring_groups(cpu) == [[0], [1]]


def test_accelerator_groups_are_bounded_in_pixels(monkeypatch) -> None:
    monkeypatch.setattr(working, "GROUP_PIXELS", 2 * 16 * 20)  # two copies a group
    meta = [WorkingCopy(torch.empty(3, 16, 20, device="meta"), torch.empty(16, 20, device="meta"), (20, 16))] * 5
    assert working.measuring_groups(meta) == [[0, 1], [2, 3], [4]]


def test_per_image_histograms_and_medians() -> None:
    g = torch.Generator().manual_seed(3)
    values = torch.randint(0, 7, (3, 5, 4), generator=g)
    weights = torch.rand(3, 5, 4, generator=g, dtype=torch.float64)
    counts = signals.per_image_bincount(values, 7)
    sums = signals.per_image_bincount(values, 7, weights)
    for i in range(3):
        assert torch.equal(counts[i], torch.bincount(values[i].flatten(), minlength=7))
        assert torch.allclose(sums[i], torch.bincount(values[i].flatten(), weights[i].flatten(), minlength=7))
    ratios = torch.rand(40, generator=g)
    owners = torch.randint(0, 4, (40,), generator=g)
    owners[owners == 2] = 3  # owner 2 has none
    counts_list = torch.bincount(owners, minlength=5).tolist()  # owner 4 has none either
    medians = signals._lower_medians(ratios, owners, counts_list)
    for i, m in enumerate(medians):
        if counts_list[i]:
            assert m == float(ratios[owners == i].median()), i
        else:
            assert math.isnan(m), i


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grouped_signals_on_cuda_agree_with_cpu(images) -> None:
    """On CUDA the same-size copies really are measured as one group; float32 on another
    device may round differently, so the local deviation can tip a few pixels across the
    texture and edge thresholds: within 2%."""
    cpu = signals.measure_copies(make_working_copies(images))
    gpu_copies = make_working_copies(images, device="cuda")
    assert max(len(g) for g in working.measuring_groups(gpu_copies)) == len(images) - 1
    gpu = signals.measure_copies(gpu_copies)
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        for field, value in a.__dict__.items():
            other = getattr(b, field)
            if value is None or isinstance(value, tuple):
                assert other == value, (i, field)
            else:
                assert other == pytest.approx(value, rel=0.02, abs=0.02 if isinstance(value, float) else 5), (i, field)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["niqe", "piqe", "brisque_pypi"])
def test_grouped_nss_scores_on_cuda_agree_with_cpu(images, name) -> None:
    sized = [im.resize((330, 250)) for im in images]
    cpu = create_scorer(name).score(make_working_copies(sized))
    gpu = create_scorer(name, device="cuda").score(make_working_copies(sized, device="cuda"))
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        assert (math.isnan(a.value) and math.isnan(b.value)) or b.value == pytest.approx(a.value, rel=0.02, abs=0.3), i


def test_batch_functions_refuse_a_single_image_with_the_fix() -> None:
    from imagejury.models.quality.brisque import brisque_features
    from imagejury.models.quality.niqe import niqe_features
    from imagejury.models.quality.piqe import piqe_batch

    gray = torch.rand(200, 208) * 255
    for fn in (niqe_features, brisque_features, piqe_batch):
        with pytest.raises(ValueError, match=r"\(N, H, W\).*gray\[None\]"):
            fn(gray)
    with pytest.raises(ValueError, match="multiple of 16"):
        piqe_batch(gray[None, :, :201])
    assert len(piqe_batch(gray[None, :192])) == 1


def test_stacking_a_batch_computed_together_is_a_view_and_anything_else_a_copy() -> None:
    batch = torch.arange(4 * 6 * 5, dtype=torch.float32).reshape(4, 6, 5)
    view = working.stacked([batch[1], batch[2], batch[3]])
    assert torch.equal(view, batch[1:]) and view.data_ptr() == batch[1].data_ptr()
    cropped = working.stacked([batch[0, :4, :3], batch[1, :4, :3]])  # slices of a batch keep their strides
    assert torch.equal(cropped, batch[:2, :4, :3]) and cropped.data_ptr() == batch.data_ptr()
    for planes in (
        [batch[0], batch[2], batch[3]],
        [batch[1], batch[0]],
        [batch[0], batch[0]],
        [batch[0], torch.zeros(6, 5)],
    ):
        copy = working.stacked(planes)  # uneven, reversed, repeated or foreign planes: a real stack
        assert torch.equal(copy, torch.stack(planes)) and copy.data_ptr() != batch.data_ptr()


def test_grouped_measures_leave_the_shared_planes_as_they_were(images, monkeypatch) -> None:
    """The measures read the group's planes as views of the copies' own: none may write to
    them, or the next measure would read changed planes."""
    monkeypatch.setattr(working, "GROUP_ON_CPU", True)
    sized = [im.resize((330, 250)) for im in images[:-1]]
    copies = make_working_copies(sized)
    planes = working.group_planes(copies)

    def shared(planes: working.GroupPlanes) -> dict[str, torch.Tensor]:
        return {**planes.__dict__, **dict(zip(("half", "half_mu", "half_sigma"), working.group_halves(copies)))}

    before = {name: value.clone() for name, value in shared(planes).items()}
    alone = {
        n: [create_scorer(n).score([im])[0].value for im in sized] for n in ("signals", "niqe", "piqe", "brisque_pypi")
    }
    for name in ("signals", "niqe", "piqe", "brisque_pypi"):
        together = [s.value for s in create_scorer(name).score(copies)]
        assert together == pytest.approx(alone[name], rel=1e-6, nan_ok=True), name
    after = working.group_planes(copies)
    assert after.gray.data_ptr() == planes.gray.data_ptr()  # the same batch, not a new stack
    for name, value in shared(after).items():
        assert torch.equal(value, before[name]), name
