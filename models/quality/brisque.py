"""BRISQUE features (Mittal, Moorthy & Bovik 2012) scored with the ``brisque`` package's SVR.

The 36 features follow the authors' ``brisque_feature.m``: 8-bit grey (MATLAB
``rgb2gray``), per scale a GGD fit of the MSCN coefficients (7-tap Gaussian, sigma 7/6,
``filter2`` zero borders, C = 1: alpha, sigma²) and an AGGD fit of the four neighbour
products (alpha, mean, left², right²); scale two is MATLAB ``imresize(im, 0.5)``.

**The model is not LIVE's.** The SVR file inside the ``brisque`` PyPI package
(``svm.txt``: epsilon-SVR, RBF, gamma 0.05, 770 support vectors, rho -155.845, with its
own min/max feature scaling) differs from LIVE's original ``allmodel`` (774 support
vectors, rho -153.591), so its numbers are not comparable with published BRISQUE
values. The measure is therefore called ``brisque_pypi`` everywhere (scorer, judge
configuration ``max_brisque_pypi``, evidence) and has its own thresholds, calibrated on
this scorer's own output. ``benchmarks/iqa_parity.py`` shows its rank agreement with the
authors' BRISQUE. No package with a licence compatible with Apache-2.0 ships LIVE's
model that we found (``image-quality`` ships the same 770-vector file).

The SVR's RBF decision function is evaluated in torch on the measuring device. Lower is
better; clean photos score roughly 0–40, heavy distortion 60–100+.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScore
from imagejury.models.quality import nss
from imagejury.models.quality.working import (
    DEFAULT_MAX_SIDE,
    WorkingCopy,
    as_working_copies,
    group_halves,
    group_planes,
    in_groups,
)

SCORER_NAME = "brisque_pypi"
MIN_SIDE = 16  # below this the half-scale MSCN has too few pixels for stable fits
# circshift offsets of brisque_feature.m: horizontal, vertical, main and secondary diagonal
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def locate_brisque_model() -> tuple[Path, Path]:
    """Find ``svm.txt`` and ``normalize.pickle`` inside the installed ``brisque`` package."""
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"quality:{SCORER_NAME}", "the installed Python packages (no 'brisque')", "pip install brisque"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    svm, norm = folder / "svm.txt", folder / "normalize.pickle"
    missing = [p for p in (svm, norm) if not p.is_file()]
    if missing:
        raise ModelUnavailableError(
            f"quality:{SCORER_NAME}",
            ", ".join(str(p) for p in missing),
            "reinstall the brisque package (pip install --force-reinstall brisque)",
        )
    return svm, norm


@dataclass
class SvrModel:
    """An epsilon-SVR with RBF kernel read from a libsvm text model."""

    gamma: float
    rho: float
    coef: torch.Tensor  # (n_sv,)
    sv: torch.Tensor  # (n_sv, n_features)

    @classmethod
    def read(cls, path: Path, n_features: int) -> SvrModel:
        header: dict[str, str] = {}
        coefs: list[float] = []
        rows: list[np.ndarray] = []
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.strip() == "SV":
                    break
                key, _, value = line.strip().partition(" ")
                header[key] = value
            for line in fh:
                parts = line.split()
                if not parts:
                    continue
                coefs.append(float(parts[0]))
                row = np.zeros(n_features)
                for tok in parts[1:]:
                    i, v = tok.split(":")
                    row[int(i) - 1] = float(v)
                rows.append(row)
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise ValueError(f"{path}: expected an epsilon_svr with rbf kernel, got {header}")
        coef = torch.as_tensor(np.asarray(coefs), dtype=torch.float64)
        return cls(float(header["gamma"]), float(header["rho"]), coef, torch.as_tensor(np.stack(rows)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_i coef_i * exp(-gamma * |sv_i - x|²) - rho`` for each row of ``x``."""
        sv = self.sv.to(x.device, x.dtype)
        d2 = torch.cdist(x, sv) ** 2
        return torch.exp(-self.gamma * d2) @ self.coef.to(x.device, x.dtype) - self.rho


def _zero_border_mscn(image: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    if stats is None:
        return nss.mscn(image, border="zeros")
    return nss.zero_border_mscn(image, *stats)


def brisque_features(
    gray: torch.Tensor,
    half: torch.Tensor | None = None,
    stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    half_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The 36 BRISQUE features (18 per scale) of each same-size 0..255 grey image of
    ``gray`` ``(N, H, W)``: ``(N, 36)``.

    ``half``, ``stats`` and ``half_stats`` (the replicate-border local mean and deviation
    of ``gray`` and of ``half``) are the working copies' shared planes when the caller has
    them; the zero-border statistics BRISQUE needs are derived from them by recomputing
    the border strips only.
    """
    nss.require_batch(gray, "brisque_features")
    if half is None:
        half, half_stats = nss.imresize_half(gray), None
    feats: list[torch.Tensor] = []
    for coeffs in (_zero_border_mscn(gray, stats), _zero_border_mscn(half, half_stats)):
        count = coeffs.shape[-2] * coeffs.shape[-1]
        moments = nss.image_moments(coeffs, _SHIFTS)  # (N, 5, 6)
        alpha, var = nss.ggd_from_moments(moments[:, 0], count)
        feats += [alpha, var]
        a, mean, left, right = nss.aggd_from_moments(moments[:, 1:], count)  # the four products at once
        for i in range(len(_SHIFTS)):
            feats += [a[:, i], mean[:, i], left[:, i] * left[:, i], right[:, i] * right[:, i]]
    return torch.stack(feats, dim=-1)


class BrisqueScorer:
    """No-reference quality from natural-scene statistics; lower is better."""

    name = SCORER_NAME
    higher_is_better = False
    range = (0.0, 100.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> None:
        svm_path, norm_path = locate_brisque_model()
        with open(norm_path, "rb") as fh:
            params = pickle.load(fh)  # a dict of two float lists written by the brisque package
        self._min = torch.as_tensor(np.asarray(params["min_"], dtype=np.float64).ravel())
        self._max = torch.as_tensor(np.asarray(params["max_"], dtype=np.float64).ravel())
        if self._min.shape != (36,) or self._max.shape != (36,):
            raise ValueError(f"{norm_path}: expected 36 min/max values")
        self.svr = SvrModel.read(svm_path, 36)
        self.max_side = max_side
        self.device = device
        self.where = str(svm_path.parent)

    def scale(self, feats: torch.Tensor) -> torch.Tensor:
        lo, hi = self._min.to(feats.device, feats.dtype), self._max.to(feats.device, feats.dtype)
        return -1.0 + 2.0 * (feats - lo) / (hi - lo)

    @staticmethod
    def _features(copies: Sequence[WorkingCopy]) -> torch.Tensor:
        """``(N, 36)`` features of one measuring group (same-size copies)."""
        p = group_planes(copies)
        half, half_mu, half_sigma = group_halves(copies)
        return brisque_features(p.gray, half, (p.mu, p.sigma), (half_mu, half_sigma))

    def _scores(self, copies: Sequence[WorkingCopy]) -> list[QualityScore]:
        """Scores of one measuring group (same-size copies, features computed together)."""
        if min(copies[0].size) < MIN_SIDE:  # too small to measure: "not measured", not a number
            error = f"BRISQUE needs at least {MIN_SIDE} px on each side, got {list(copies[0].size)}"
            return [QualityScore(self.name, float("nan"), False, self.range, {"error": error}) for _ in copies]
        feats = self._features(copies).to(torch.float64).cpu()
        out = []
        for copy, v in zip(copies, self.svr.predict(self.scale(feats)).tolist()):
            details = {"raw": float(v), "working_size": list(copy.size), "model": "brisque PyPI package SVR"}
            if not np.isfinite(v):
                details["error"] = (
                    "BRISQUE is undefined here: the normalised contrast has no positive or no negative "
                    "values to fit (flat or posterised content has no natural-scene statistics)"
                )
            out.append(
                QualityScore(self.name, float(np.clip(v, *self.range)), self.higher_is_better, self.range, details)
            )
        return out

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        return in_groups(as_working_copies(images, self.max_side, self.device), self._scores)
