"""Parity of the torch NSS building blocks with the reference MATLAB algorithms.

The reference values here are derived, not recorded from our own output:

- ``rgb2gray``: MATLAB's published coefficients give 76/150/29 for pure red/green/blue;
- ``imresize(x, 0.5)``: a literal loop transcription of MATLAB's ``contributions``
  (bicubic a = -0.5, kernel widened by 1/scale, indices mirrored) written below;
- the GGD/AGGD fits: samples drawn from distributions with known shape;
- NIQE end to end: a loop transcription of the authors' ``computequality.m`` and
  ``computefeature.m`` in numpy/scipy (``imfilter(..., 'replicate')`` = ``ndimage``
  ``nearest``; ``circshift``; the ``gam = 0.2:0.001:10`` table by brute-force argmin),
  run on generated 1/f images, against the scorer's torch implementation.

The five TID2013 images and the authors' published scores are checked by
``benchmarks/iqa_parity.py`` (research data, not shipped with the repository).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, special

from imagejury.models.quality import nss
from imagejury.models.quality.niqe import NiqeScorer
from imagejury.models.quality.working import make_working_copies


def _cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def matlab_imresize_half_1d(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize`` along one axis at scale 0.5, transcribed from ``contributions``."""
    n = len(x)
    out_len = math.ceil(n * 0.5)
    scale, width = 0.5, 4.0 / 0.5
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = int(math.ceil(width)) + 2
        idx = [left + k for k in range(taps)]
        w = np.array([scale * _cubic(scale * (u - j)) for j in idx])
        w /= w.sum()
        aux = list(range(1, n + 1)) + list(range(n, 0, -1))
        src = [aux[(j - 1) % len(aux)] - 1 for j in idx]
        out[i - 1] = float(np.dot(w, x[src]))
    return out


def matlab_imresize_half(img: np.ndarray) -> np.ndarray:
    rows = np.stack([matlab_imresize_half_1d(r) for r in img])  # MATLAB resizes columns... order is
    return np.stack([matlab_imresize_half_1d(c) for c in rows.T]).T  # irrelevant for a separable kernel


def test_rgb2gray_rounds_like_matlab() -> None:
    rgb = torch.tensor([[[[255.0]], [[0.0]], [[0.0]]], [[[0.0]], [[255.0]], [[0.0]]], [[[0.0]], [[0.0]], [[255.0]]]])
    assert nss.rgb_to_gray_uint8(rgb).flatten().tolist() == [76.0, 150.0, 29.0]
    assert nss.rgb_to_gray_uint8(rgb.to(torch.uint8)).flatten().tolist() == [76.0, 150.0, 29.0]


def test_fixed_point_gray_equals_matlab_double_arithmetic_for_every_colour() -> None:
    """All 2²⁴ colours, one red level at a time: the uint8 fast path against
    ``round(double weights · values)`` (what MATLAB computes)."""
    levels = torch.arange(256, dtype=torch.uint8)
    green, blue = torch.meshgrid(levels, levels, indexing="ij")
    w = nss.MATLAB_GRAY_WEIGHTS
    for red in range(256):
        rgb = torch.stack([torch.full_like(green, red), green, blue])[None]
        want = torch.round(red * w[0] + green.double() * w[1] + blue.double() * w[2])
        assert torch.equal(nss.rgb_to_gray_uint8(rgb)[0].double(), want), red


@pytest.mark.parametrize("shape", [(13, 10), (16, 16), (7, 31)])
def test_imresize_half_matches_the_matlab_transcription(shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).uniform(0, 255, shape)
    ours = nss.imresize_half(torch.from_numpy(img)[None])[0].numpy()
    assert ours.shape == (math.ceil(shape[0] / 2), math.ceil(shape[1] / 2))
    assert np.allclose(ours, matlab_imresize_half(img), atol=1e-9)


def test_ggd_and_aggd_fits_recover_known_shapes() -> None:
    rng = np.random.default_rng(0)
    gauss = torch.from_numpy(rng.normal(0, 2.0, (1, 200_000)))
    alpha, var = nss.ggd_fit(gauss)
    assert float(alpha) == pytest.approx(2.0, abs=0.05) and float(var) == pytest.approx(4.0, rel=0.02)
    laplace = torch.from_numpy(rng.laplace(0, 1.0, (1, 200_000)))
    assert float(nss.ggd_fit(laplace)[0]) == pytest.approx(1.0, abs=0.05)
    # asymmetric Gaussian, left scale 1 and right scale 2: each side holds mass in proportion
    # to its scale (1/3 : 2/3) -> alpha 2, left/right scales in ratio 1:2
    half = np.abs(rng.normal(0, 1.0, 300_000))
    skew = torch.from_numpy(np.concatenate([-half[:100_000], 2 * half[100_000:]])[None])
    a, mean, bl, br = (float(v) for v in nss.aggd_fit(skew))
    assert a == pytest.approx(2.0, abs=0.1) and br / bl == pytest.approx(2.0, rel=0.03) and mean > 0


# -- NIQE, transcribed from the authors' MATLAB ------------------------------------------
_GAM = np.arange(0.2, 10.0 + 1e-9, 0.001)
_R_GAM = special.gamma(2.0 / _GAM) ** 2 / (special.gamma(1.0 / _GAM) * special.gamma(3.0 / _GAM))


def _estimateaggdparam(vec: np.ndarray) -> tuple[float, float, float]:
    left = math.sqrt(np.mean(vec[vec < 0] ** 2))
    right = math.sqrt(np.mean(vec[vec > 0] ** 2))
    gammahat = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    k = math.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left * k, right * k


def _computefeature(block: np.ndarray) -> list[float]:
    alpha, bl, br = _estimateaggdparam(block.ravel())
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = block.ravel() * np.roll(block, shift, axis=(0, 1)).ravel()
        alpha, bl, br = _estimateaggdparam(pair)
        mean = (br - bl) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
        feat += [alpha, mean, bl, br]
    return feat


def reference_niqe(gray: np.ndarray, mu0: np.ndarray, cov0: np.ndarray) -> float:
    size = 96
    h, w = gray.shape
    im = gray[: h // size * size, : w // size * size]
    win = np.outer(*(2 * [nss.gaussian_taps()]))
    feats = []
    for scale in (1, 2):
        mu = ndimage.correlate(im, win, mode="nearest")
        sigma = np.sqrt(np.abs(ndimage.correlate(im * im, win, mode="nearest") - mu * mu))
        struct = (im - mu) / (sigma + 1)
        b = size // scale
        feats.append(
            [
                _computefeature(struct[r : r + b, c : c + b])
                for r in range(0, struct.shape[0], b)
                for c in range(0, struct.shape[1], b)
            ]
        )
        im = matlab_imresize_half(im)
    dist = np.hstack([np.asarray(f) for f in feats])
    mu = dist.mean(0)
    cov = np.cov(dist, rowvar=False)
    d = mu0 - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov0 + cov) / 2) @ d))


def _one_over_f(seed: int, size: int = 288) -> Image.Image:
    """A natural-looking 1/f grey texture with some edges, as an RGB image."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    amp = 1.0 / np.maximum(np.hypot(*np.meshgrid(f, f)), 1.0 / size)
    field = np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.uniform(size=(size, size)))))
    field = (field - field.min()) / (field.max() - field.min()) * 200 + 20
    field[size // 3 :, size // 2 :] += 25  # a step edge
    arr = np.clip(np.round(field), 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([arr] * 3, -1), "RGB")


@pytest.mark.parametrize("border", ["replicate", "zeros"])
def test_local_stats_match_a_direct_2d_correlation(border: str) -> None:
    """``fspecial('gaussian', 7, 7/6)`` with ``imfilter`` replicate / ``filter2`` zeros,
    as scipy computes it in float64, against the float32 separable window."""
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (37, 45)).astype(np.float64)
    win = np.outer(*(2 * [nss.gaussian_taps()]))
    mode = "nearest" if border == "replicate" else "constant"
    mu = ndimage.correlate(gray, win, mode=mode, cval=0.0)
    sigma = np.sqrt(np.abs(ndimage.correlate(gray * gray, win, mode=mode, cval=0.0) - mu * mu))
    got_mu, got_sigma = nss.local_stats(torch.from_numpy(gray).float()[None], border)
    assert np.allclose(got_mu[0].numpy(), mu, atol=2e-3)
    assert np.allclose(got_sigma[0].numpy(), sigma, atol=2e-2)


@pytest.mark.parametrize("shape", [(61, 77), (96, 50)])
def test_shared_planes_give_each_measure_its_own_edges(shape: tuple[int, int]) -> None:
    """NIQE's crop and BRISQUE's zero borders are derived from the shared replicate-border
    planes by recomputing strips; the MSCN must equal the one computed from scratch
    (and differ from simply cutting the shared planes, or the test would prove nothing)."""
    gray = torch.from_numpy(np.random.default_rng(4).integers(0, 256, shape).astype(np.float32))
    mu, sigma = nss.local_stats(gray)
    h, w = shape[0] - shape[0] % 16 - 2, shape[1] - shape[1] % 16 - 4
    want = nss.mscn(gray[:h, :w])
    assert torch.allclose(nss.crop_mscn(gray, mu, sigma, h, w), want, atol=1e-4)
    assert not torch.allclose(nss.mscn_from_stats(gray[:h, :w], mu[:h, :w], sigma[:h, :w]), want, atol=1e-2)
    assert torch.equal(nss.crop_mscn(gray, mu, sigma, *shape), nss.mscn_from_stats(gray, mu, sigma))  # no crop
    want = nss.mscn(gray, "zeros")
    assert torch.allclose(nss.zero_border_mscn(gray, mu, sigma), want, atol=1e-4)
    assert not torch.allclose(nss.mscn_from_stats(gray, mu, sigma), want, atol=1e-2)
    half = nss.imresize_half(gray[None])
    want_half = nss.imresize_half(gray[None, :h, :w])
    assert torch.allclose(nss.crop_half(gray[None], half, h, w), want_half, atol=1e-4)
    assert not torch.allclose(half[:, : h // 2, : w // 2], want_half, atol=1e-2)
    # NIQE's second scale: the cropped image's half, MSCN from the shared half's stats
    small = want_half[0]
    half_mu, half_sigma = nss.local_stats(half[0])
    want = nss.mscn(small)
    assert torch.allclose(nss.crop_mscn(small, half_mu, half_sigma, *small.shape, changed=2), want, atol=1e-4)
    naive = nss.mscn_from_stats(
        small, half_mu[: small.shape[0], : small.shape[1]], half_sigma[: small.shape[0], : small.shape[1]]
    )
    assert not torch.allclose(naive, want, atol=1e-2)  # the changed rows and the crop matter


@pytest.mark.parametrize(("seed", "crop"), [(0, None), (1, None), (2, (301, 339))])
def test_niqe_matches_the_transcribed_reference(seed: int, crop: tuple[int, int] | None) -> None:
    """The float64 loop transcription against the float32 torch scorer: the working
    precision moves NIQE by a few 1e-4; a wrong border rule or crop moves it by 0.05+.
    The cropped case (not a multiple of 96) exercises the shared planes' edge fix-ups."""
    scorer = NiqeScorer()
    img = _one_over_f(seed, 384)
    if crop:
        img = img.crop((0, 0, *crop))
    gray = make_working_copies([img])[0].gray.numpy().astype(np.float64)
    expected = reference_niqe(gray, scorer.mu0.numpy(), scorer.cov0.numpy())
    (got,) = scorer.score([img])
    assert got.value == pytest.approx(expected, abs=0.01)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pixel_measures_on_cuda_agree_with_cpu() -> None:
    """One implementation on either device: CUDA (float32) within float tolerance of CPU."""
    from imagejury.models.quality import create_scorer

    img = _one_over_f(3, 384)
    for name in ("niqe", "piqe", "brisque_pypi"):
        cpu = create_scorer(name).score([img])[0].value
        gpu = create_scorer(name, device="cuda").score([img])[0].value
        assert gpu == pytest.approx(cpu, rel=0.02, abs=0.3), name
