"""No-reference image-quality scorers: BRISQUE features with the brisque package's SVR
(``brisque_pypi``), NIQE, PIQE, pixel signals, CLIP-IQA. One torch implementation
(``nss``, ``working``) on the device the CLIP runs on.

``create_scorer(name)`` builds one (the registry in ``imagejury.models.provider`` caches it);
``locate_scorers()`` says which are usable here and from where, without scoring.
CLIP-IQA is the exception: it runs on a CLIP the caller already has, so it is built
with ``ClipIQAScorer(embedder)`` and not by name.
"""

from __future__ import annotations

from imagejury.errors import ConfigError
from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScorer
from imagejury.models.quality.signals import SIGNALS

NSS_SCORERS = ("brisque_pypi", "niqe", "piqe")
SCORER_NAMES = NSS_SCORERS + ("signals",) + tuple(SIGNALS)


def create_scorer(name: str, device: str = "cpu") -> QualityScorer:
    """Build the scorer called ``name`` (see ``SCORER_NAMES``), measuring on ``device``
    (the CLIP's: ``cpu`` or ``cuda``; the pixel measures are torch, one implementation)."""
    key = name.lower().strip()
    if key == "brisque":
        raise ConfigError(
            "'brisque' is called 'brisque_pypi': the SVR inside the brisque package is not LIVE's original "
            "model, so its scores are not comparable with published BRISQUE values"
        )
    if key == "brisque_pypi":
        from imagejury.models.quality.brisque import BrisqueScorer

        return BrisqueScorer(device=device)
    if key == "niqe":
        from imagejury.models.quality.niqe import NiqeScorer

        return NiqeScorer(device=device)
    if key == "piqe":
        from imagejury.models.quality.piqe import PiqeScorer

        return PiqeScorer(device=device)
    if key == "signals":
        from imagejury.models.quality.signals import AllSignalsScorer

        return AllSignalsScorer(device=device)
    if key in SIGNALS:
        from imagejury.models.quality.signals import signal_scorer

        return signal_scorer(key, device=device)
    if key == "clip_iqa" or key.startswith("clip_iqa"):
        raise ConfigError(
            "clip_iqa runs on a CLIP model: build it with "
            "imagejury.models.quality.clip_iqa.ClipIQAScorer(model_set.embedder())"
        )
    raise ConfigError(f"unknown quality scorer '{name}' (known: {', '.join(SCORER_NAMES)}, clip_iqa)")


def locate_scorers() -> list[tuple[str, bool, str]]:
    """(name, available, where) for every scorer, cheaply (no scoring, no big loads)."""
    rows: list[tuple[str, bool, str]] = []
    try:
        from imagejury.models.quality.brisque import locate_brisque_model

        svm, _ = locate_brisque_model()
        rows.append(("brisque_pypi", True, str(svm.parent)))
    except ModelUnavailableError as exc:
        rows.append(("brisque_pypi", False, str(exc)))
    try:
        from imagejury.models.quality.niqe import locate_niqe_params

        rows.append(("niqe", True, str(locate_niqe_params())))
    except ModelUnavailableError as exc:
        rows.append(("niqe", False, str(exc)))
    rows.append(("piqe", True, "built in (no parameters)"))
    rows.append(("signals", True, "built in (no parameters): " + ", ".join(SIGNALS)))
    rows.append(("clip_iqa", True, "no weights of its own: runs on the image_text model listed above"))
    return rows


__all__ = ["create_scorer", "locate_scorers", "SCORER_NAMES", "NSS_SCORERS"]
