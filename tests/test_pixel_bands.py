"""The pixel measures work through an image in bands of rows (``nss.BAND_VALUES``) so that
their intermediates stay in cache on CPU, and take some exact shortcuts (counting instead
of selecting, byte arithmetic instead of comparisons). Each must give the same numbers
as the plain whole-image computation: forcing many tiny bands, or the slow path, must
change nothing."""

from __future__ import annotations

import pytest
import torch

from imagejury.models.quality import create_scorer, nss, signals
from imagejury.models.quality.working import group_planes, make_working_copies
from tests.support import photos


@pytest.fixture(scope="module")
def image():
    # an odd-sized, textured crop: bands end mid-image and mid-block
    return photos.noise(photos.photo("astronaut"), 6.0).crop((7, 5, 7 + 301, 5 + 259))


def _all_scores(image) -> dict[str, object]:
    copy = make_working_copies([image])[0]
    out: dict[str, object] = {n: create_scorer(n).score([copy])[0].value for n in ("niqe", "piqe", "brisque_pypi")}
    out.update(signals.measure_copy(copy).__dict__)
    return out


def test_many_small_bands_give_the_same_scores_as_one_band(image, monkeypatch) -> None:
    one_band = _all_scores(image)
    monkeypatch.setattr(nss, "BAND_VALUES", 700)  # a few rows per band
    many_bands = _all_scores(image)
    assert one_band.keys() == many_bands.keys()
    for name, value in one_band.items():
        if isinstance(value, float):
            assert many_bands[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
        else:
            assert many_bands[name] == value, name


def test_band_moments_equal_whole_image_sums_with_circular_shifts(monkeypatch) -> None:
    x = torch.randn(37, 29)
    shifts = ((0, 1), (1, 0), (1, 1), (1, -1), (-1, 1))
    banded = nss.image_moments(x, shifts)
    whole = [nss.moment_sums(x.reshape(1, -1), (1,))[0]]
    whole += [nss.moment_sums((x * torch.roll(x, s, dims=(0, 1))).reshape(1, -1), (1,))[0] for s in shifts]
    monkeypatch.setattr(nss, "BAND_VALUES", 29 * 4)  # four rows a band: every band boundary and both wraps crossed
    tiny = nss.image_moments(x, shifts)
    assert torch.allclose(banded, torch.stack(whole), rtol=1e-5, atol=1e-4)
    assert torch.allclose(tiny, banded, rtol=1e-5, atol=1e-4)


def test_block_moments_wrap_inside_each_block() -> None:
    x = torch.randn(3 * 8 + 5, 2 * 8 + 3)  # whole 8×8 blocks only; the rest is ignored
    got = nss.block_moments(x, 8, ((1, 1), (0, 1)))
    blocks = [x[r : r + 8, c : c + 8] for r in range(0, 24, 8) for c in range(0, 16, 8)]
    for i, b in enumerate(blocks):
        want = nss.moment_sums((b * torch.roll(b, (1, 1), dims=(0, 1))).reshape(1, -1), (1,))[0]
        assert torch.allclose(got[i, 1], want, rtol=1e-5, atol=1e-4)


def test_byte_arithmetic_threshold_is_a_comparison() -> None:
    """Every byte value against every limit a caller can pass."""
    size = torch.arange(256, dtype=torch.uint8)
    for limit in range(255):
        assert torch.equal(signals._beyond(size, limit), (size.int() > limit).to(torch.uint8)), limit


def test_noise_by_counting_equals_the_exact_selection(image) -> None:
    gray = make_working_copies([image])[0].gray
    fast = signals.noise_sigma(gray, integers=True)
    exact = signals.noise_sigma(gray, integers=False)  # kthvalue over the whole image
    assert fast == pytest.approx(exact, rel=1e-9)
    assert fast != pytest.approx(signals.noise_sigma(gray, edge_fraction=0.0), rel=1e-3)


def test_noise_falls_back_to_exact_selection_past_the_count_cap(image) -> None:
    """Salt-and-pepper pixels put most squared Sobel gradients past the counting cap: that
    image is measured by exact selection, the other image of the batch still by counting,
    and both equal the exact selection."""
    g = torch.Generator().manual_seed(2)
    harsh = (torch.randint(0, 2, (120, 130), generator=g) * 255).to(nss.WORK_DTYPE)
    calm = make_working_copies([image])[0].gray[:120, :130]
    batch = torch.stack([harsh, calm])
    counted = signals._noise_by_counting(batch, int(0.9 * 118 * 128))
    assert counted[0] is None and counted[1] is not None
    got = signals.noise_sigma_batch(batch)
    for i in range(2):
        assert got[i] == pytest.approx(signals.noise_sigma(batch[i], integers=False), rel=1e-9), i
    assert signals._noise_by_counting(harsh[None], int(0.9 * 118 * 128)) == [None]


def _reference_false_contour_steps(planes: torch.Tensor) -> int:
    """The module docstring's definition, a line at a time in plain Python."""
    total = 0
    arr = planes.to(torch.int64)
    lines = [arr[c, r].tolist() for c in range(arr.shape[0]) for r in range(arr.shape[1])]
    lines += [arr[c, :, x].tolist() for c in range(arr.shape[0]) for x in range(arr.shape[2])]
    for line in lines:
        d = [b - a for a, b in zip(line, line[1:])]
        m = len(d)
        busy = [abs(v) > signals.CONTOUR_FLAT for v in d]
        step = [
            2 <= p <= m - 3 and abs(d[p]) >= signals.CONTOUR_MIN_STEP and not any(busy[p + o] for o in (-2, -1, 1, 2))
            for p in range(m)
        ]
        for p in range(m):
            if not step[p]:
                continue
            q = next((j for j in range(p + 1, m) if busy[j]), None)
            if q is None or q - p > signals.CONTOUR_MAX_GAP or not step[q]:
                continue
            a, b = abs(d[p]), abs(d[q])
            same_sign = (d[p] > 0) == (d[q] > 0)
            similar = b <= signals.CONTOUR_SIZE_RATIO * a and a <= signals.CONTOUR_SIZE_RATIO * b
            on_grid = p % 8 == 7 and q % 8 == 7
            total += same_sign and similar and not on_grid
    return total


@pytest.mark.parametrize(("seed", "longest"), [(0, 9), (1, 9), (2, 9), (3, 40), (4, 40)])
def test_false_contours_count_what_the_definition_counts(seed: int, longest: int, monkeypatch) -> None:
    """Random plateaus with extreme levels (0 and 255 side by side), small wobbles and
    staircases, in many small bands: the fast search against the plain definition.
    Long plateaus put a step's partner far back along the line."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.tensor([0, 1, 2, 6, 12, 18, 60, 66, 120, 249, 253, 255])
    planes = torch.empty(3, 40, 52, dtype=torch.uint8)
    for c in range(3):
        for r in range(40):
            x = 0
            while x < 52:
                run = int(torch.randint(1, longest, (1,), generator=gen))
                planes[c, r, x : x + run] = levels[int(torch.randint(0, len(levels), (1,), generator=gen))]
                x += run
    planes[:, ::3] = planes[:, ::3].roll(1, dims=1)  # vary the columns too
    monkeypatch.setattr(nss, "BAND_VALUES", 150)
    want = _reference_false_contour_steps(planes)
    assert want > 0
    assert signals.false_contours(planes) == pytest.approx(1000.0 * want / planes.numel())


@pytest.mark.parametrize("dim", [1, 2])
def test_false_contours_on_lines_longer_than_a_short_count(dim: int) -> None:
    """A staircase along lines of 100,000 pixels (a panorama measured with no shrink)
    holds more steps per line than an int16 count; the count must not wrap."""
    line = torch.tensor([(x // 3 * 8) % 256 for x in range(100_000)], dtype=torch.uint8)
    planes = line.expand(3, 2, len(line)).contiguous()
    want = _reference_false_contour_steps(planes)
    assert want > 1 << 16
    if dim == 1:
        planes = planes.transpose(1, 2).contiguous()
    assert signals.false_contours(planes) == pytest.approx(1000.0 * want / planes.numel())


def _reference_soft_clip(gray: torch.Tensor) -> float:
    blown = gray >= signals.BRIGHT_LEVEL
    near = torch.nn.functional.max_pool2d(blown.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0
    border = near & ~blown
    return int((gray[border] >= 230).sum()) / int(border.sum()) if bool(border.any()) else 0.0


@pytest.mark.parametrize("gain", [1.0, 1.8, 3.0])
def test_soft_clip_is_the_share_of_near_white_around_blown_pixels(gain: float, monkeypatch) -> None:
    img = photos.exposure(photos.photo("rocket"), gain)
    gray = make_working_copies([img])[0].gray
    want = _reference_soft_clip(gray)
    monkeypatch.setattr(nss, "BAND_VALUES", 3000)
    assert signals.soft_clip(gray) == pytest.approx(want, rel=1e-6, abs=1e-9)
    if gain > 1.0:
        assert want > 0.0  # the test sees blown pixels


@pytest.mark.parametrize("size", [(1, 1), (17, 15), (259, 301)])  # under one run, a ragged tail, several bands
def test_channel_moments_give_the_plain_colour_statistics(size, monkeypatch) -> None:
    """Colourfulness and channel deviations from the banded 3×3 products equal the plain
    float64 formulas (Hasler & Süsstrunk; population deviations), many bands or one."""
    g = torch.Generator().manual_seed(size[0])
    rgb = torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
    rgb[:, : size[0] // 2] //= 7  # a dull half: the channel deviations differ
    x = rgb.to(torch.float64)
    rg, yb = x[0] - x[1], (x[0] + x[1]) / 2 - x[2]
    want_colour = float(
        torch.hypot(rg.std(unbiased=False), yb.std(unbiased=False)) + 0.3 * torch.hypot(rg.mean(), yb.mean())
    )
    want_std = max(float(c.std(unbiased=False)) for c in x)
    assert signals.colourfulness(rgb) == pytest.approx(want_colour, rel=1e-12, abs=1e-12)
    assert signals.channel_std_max(rgb) == pytest.approx(want_std, rel=1e-12, abs=1e-12)
    moments = signals.channel_moments(rgb)
    assert moments.n == size[0] * size[1]
    assert moments.products[0][1] == int((x[0] * x[1]).sum())
    monkeypatch.setattr(nss, "BAND_VALUES", 3 * size[1])  # one row a band
    assert signals.channel_moments(rgb) == moments
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast must not round the products
        assert signals.channel_moments(rgb) == moments


def test_subject_luma_is_the_exact_mean_of_the_textured_pixels(image) -> None:
    copy = make_working_copies([image])[0]
    std = group_planes([copy]).sigma[0]
    mask = (std >= signals.TEXTURE_STD).numpy()
    gray = copy.gray.numpy().astype("float64")
    report = signals.measure_copy(copy)
    assert 0.05 < mask.mean() < 1.0  # some pixels are flat, most are not
    assert report.textured_fraction == mask.mean()
    assert report.subject_luma == gray[mask].sum() / mask.sum()  # exact, not a float32 dot product


def test_blockiness_sums_stay_exact_in_one_band(monkeypatch) -> None:
    """An accelerator takes the whole image as one band: 4 M steps of up to 24 levels sum
    past float32's 2²⁴, so the band sums must switch to float64 (``_exact_sum_dtype``)."""
    g = torch.Generator().manual_seed(5)
    gray = torch.randint(0, 40, (1, 2048, 2048), generator=g).to(nss.WORK_DTYPE)
    x = gray[0].double()
    dx, dy = (x[:, 1:] - x[:, :-1]).abs().clamp(max=24), (x[1:] - x[:-1]).abs().clamp(max=24)
    on = float(dx[:, 7::8].sum() + dy[7::8].sum())
    on_n, off_n = (
        dx[:, 7::8].numel() + dy[7::8].numel(),
        dx.numel() + dy.numel() - dx[:, 7::8].numel() - dy[7::8].numel(),
    )
    want = (on / on_n + signals.BLOCK_STEP_FLOOR) / (
        (float(dx.sum() + dy.sum()) - on) / off_n + signals.BLOCK_STEP_FLOOR
    )
    assert signals.blockiness_batch(gray) == [want]  # cache-sized bands: float32 sums, exact per band
    monkeypatch.setattr(nss, "BAND_VALUES", 1 << 40)
    assert signals.blockiness_batch(gray) == [want]
    # the rule: float32 only while the sum cannot pass 2²⁴
    assert signals._exact_sum_dtype(1 << 16, 255) == torch.float32  # ≤ 2¹⁶ · 255 < 2²⁴
    assert signals._exact_sum_dtype(1 << 17, 255) == torch.float64
    assert signals._exact_sum_dtype(2048 * 2048, 24) == torch.float64
