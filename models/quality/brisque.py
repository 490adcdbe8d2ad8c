"""BRISQUE (Mittal, Moorthy & Bovik 2012) with the LIVE SVR model shipped in ``brisque``.

The ``brisque`` PyPI package ships the original LIVE model (``svm.txt``: epsilon-SVR,
RBF kernel, gamma 0.05, 770 support vectors) and its feature scaling
(``normalize.pickle``: per-feature min/max to [-1, 1]). Its own scoring code breaks on
numpy 2 (``float()`` on 1-element arrays), so the 36 features are computed here, after
the reference MATLAB ``brisque_feature.m``: per scale, a GGD fit of the MSCN
coefficients (alpha, sigma²) and an AGGD fit of the four neighbour products (alpha,
mean, left², right²); scale two is a half-size bicubic copy.

The SVR is evaluated with libsvm (``libsvm-official``, a dependency of ``brisque``) when
importable, else with the same RBF decision function in numpy; both read the same file
and agree to float precision (tested). Lower scores are better; natural photos score
roughly 0–40, heavy distortion 60–100+.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScore
from imagejury.models.quality._common import (
    DEFAULT_MAX_SIDE,
    aggd_fit,
    ggd_fit,
    gray255,
    mscn,
    resize_half,
    working_copy,
)

log = logging.getLogger(__name__)

MIN_SIDE = 16  # below this the half-scale MSCN has too few pixels for stable fits
# circshift offsets of brisque_feature.m: horizontal, vertical, main and secondary diagonal
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def locate_brisque_model() -> tuple[Path, Path]:
    """Find ``svm.txt`` and ``normalize.pickle`` inside the installed ``brisque`` package."""
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "quality:brisque", "the installed Python packages (no 'brisque')", "pip install brisque"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    svm, norm = folder / "svm.txt", folder / "normalize.pickle"
    missing = [p for p in (svm, norm) if not p.is_file()]
    if missing:
        raise ModelUnavailableError(
            "quality:brisque",
            ", ".join(str(p) for p in missing),
            "reinstall the brisque package (pip install --force-reinstall brisque)",
        )
    return svm, norm


@dataclass
class SvrModel:
    """An epsilon-SVR with RBF kernel read from a libsvm text model."""

    gamma: float
    rho: float
    coef: np.ndarray  # (n_sv,)
    sv: np.ndarray  # (n_sv, n_features)

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
        return cls(float(header["gamma"]), float(header["rho"]), np.asarray(coefs), np.stack(rows))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``sum_i coef_i * exp(-gamma * |sv_i - x|²) - rho`` for each row of ``x``."""
        d2 = ((x[:, None, :] - self.sv[None, :, :]) ** 2).sum(-1)
        return np.exp(-self.gamma * d2) @ self.coef - self.rho


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a 0..255 grey image (18 per scale, two scales)."""
    feats: list[float] = []
    img = gray
    for _ in range(2):
        coeffs = mscn(img, c=1.0, mode="constant")
        alpha, var = ggd_fit(coeffs)
        feats += [alpha, var]
        for dy, dx in _SHIFTS:
            pair = coeffs * np.roll(coeffs, (dy, dx), axis=(0, 1))
            a, mean, left, right = aggd_fit(pair)
            feats += [a, mean, left * left, right * right]
        img = resize_half(img)
    return np.asarray(feats)


class BrisqueScorer:
    """No-reference quality from natural-scene statistics; lower is better."""

    name = "brisque"
    higher_is_better = False
    range = (0.0, 100.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, use_libsvm: bool | None = None) -> None:
        svm_path, norm_path = locate_brisque_model()
        with open(norm_path, "rb") as fh:
            params = pickle.load(fh)  # a dict of two float lists written by the brisque package
        self._min = np.asarray(params["min_"], dtype=np.float64).ravel()
        self._max = np.asarray(params["max_"], dtype=np.float64).ravel()
        if self._min.shape != (36,) or self._max.shape != (36,):
            raise ValueError(f"{norm_path}: expected 36 min/max values")
        self.svr = SvrModel.read(svm_path, 36)
        self.max_side = max_side
        self.where = str(svm_path.parent)
        self._libsvm = None
        if use_libsvm is not False:
            self._libsvm = _load_libsvm(svm_path)
            if self._libsvm is None and use_libsvm:
                raise ModelUnavailableError("libsvm", "the installed Python packages", "pip install libsvm-official")
        self.backend = "libsvm" if self._libsvm is not None else "numpy"

    def scale(self, feats: np.ndarray) -> np.ndarray:
        return -1.0 + 2.0 * (feats - self._min) / (self._max - self._min)

    def predict_scaled(self, scaled: np.ndarray) -> np.ndarray:
        if self._libsvm is None:
            return self.svr.predict(scaled)
        svmutil, model = self._libsvm
        out = []
        for row in scaled:
            nodes, _ = svmutil.gen_svm_nodearray([float(v) for v in row], isKernel=False)
            out.append(svmutil.libsvm.svm_predict(model, nodes))
        return np.asarray(out, dtype=np.float64)

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        out: list[QualityScore | None] = [None] * len(images)
        rows, where, sizes = [], [], []
        for i, image in enumerate(images):
            work = working_copy(image, self.max_side)
            if min(work.size) < MIN_SIDE:
                # too small to measure: "not measured", not a number
                out[i] = QualityScore(
                    self.name,
                    float("nan"),
                    False,
                    self.range,
                    {"error": f"BRISQUE needs at least {MIN_SIDE} px on each side, got {list(work.size)}"},
                )
                continue
            rows.append(brisque_features(gray255(work)))
            where.append(i)
            sizes.append(work.size)
        if rows:
            raw = self.predict_scaled(self.scale(np.stack(rows)))
            for i, v, s in zip(where, raw, sizes):
                out[i] = QualityScore(
                    self.name,
                    float(np.clip(v, *self.range)),
                    self.higher_is_better,
                    self.range,
                    {"raw": float(v), "working_size": list(s), "svr": self.backend},
                )
        return out  # type: ignore[return-value]


def _load_libsvm(svm_path: Path):  # type: ignore[no-untyped-def]
    """libsvm's own predictor, or None when ``libsvm-official`` is not importable."""
    try:
        from libsvm import svmutil
    except Exception as exc:  # noqa: BLE001 - any import failure means "use numpy"
        log.info("libsvm not usable (%s); BRISQUE uses the numpy SVR", exc)
        return None
    model = svmutil.svm_load_model(str(svm_path))
    if not model:
        return None
    return svmutil, model
