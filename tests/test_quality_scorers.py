"""The quality scorers on real photos (scikit-image's samples) and graded distortions.

Real parameters only: the ``brisque`` package's SVR (``brisque_pypi``), the authors' NIQE
pristine model (shipped in ``models/quality/data``), PIQE and the signals need none.
Parity with the reference algorithms is in ``tests/test_nss_parity.py``. The monotonicity checks use
Spearman's rank correlation over five levels of each distortion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from imagejury.errors import ConfigError
from imagejury.models.quality import create_scorer, locate_scorers
from imagejury.models.quality.brisque import BrisqueScorer
from imagejury.models.quality.clip_iqa import ClipIQAScorer, clip_iqa_from_embeddings
from imagejury.models.quality.signals import measure, noise_sigma
from tests.support import photos

PHOTOS = photos.PHOTO_NAMES  # astronaut, coffee, chelsea, rocket
STRONG = {
    "blur": lambda im: photos.blur(im, 4.0),
    "noise": lambda im: photos.noise(im, 30.0),
    "jpeg": lambda im: photos.jpeg(im, 8),
}


@pytest.fixture(scope="module")
def scorers() -> dict:
    return {n: create_scorer(n) for n in ("brisque_pypi", "niqe", "piqe", "signals")}


@pytest.fixture(scope="module")
def graded_scores(scorers: dict) -> dict:
    """{(photo, kind): {metric: [five values, weakest distortion first]}}, computed once."""
    out: dict = {}
    for name in PHOTOS:
        img = photos.photo(name)
        for kind in ("blur", "noise", "jpeg", "exposure"):
            levels = photos.graded(img, kind)
            row = {m: [s.value for s in scorers[m].score(levels)] for m in ("brisque_pypi", "piqe")}
            if name == "astronaut":
                row["niqe"] = [s.value for s in scorers["niqe"].score(levels)]
            reps = [measure(im) for im in levels]
            row["edge_sharpness"] = [r.edge_sharpness for r in reps]
            row["noise_sigma"] = [r.noise_sigma for r in reps]
            row["blockiness"] = [r.blockiness for r in reps]
            row["bright_fraction"] = [r.bright_fraction for r in reps]
            out[(name, kind)] = row
    return out


def _rho(values: list[float]) -> float:
    return float(spearmanr(np.arange(len(values)), values).statistic)


def test_locate_scorers_finds_shipped_parameters() -> None:
    rows = {name: (ok, where) for name, ok, where in locate_scorers()}
    assert rows["brisque_pypi"][0] and rows["brisque_pypi"][1].endswith("models")
    assert rows["niqe"][0] and rows["niqe"][1].endswith("niqe_pristine_params.npz")
    assert rows["piqe"][0] and rows["signals"][0]


def test_create_scorer_refuses_unknown_and_explains_clip_iqa() -> None:
    with pytest.raises(ConfigError, match="unknown quality scorer"):
        create_scorer("musiq")
    with pytest.raises(ConfigError, match="ClipIQAScorer"):
        create_scorer("clip_iqa")
    with pytest.raises(ConfigError, match="not LIVE's original model"):
        create_scorer("brisque")  # the old name: its model is not LIVE's, so it is not "BRISQUE"


def test_scores_declare_direction_and_range(scorers: dict) -> None:
    img = photos.photo("astronaut")
    for scorer in scorers.values():
        (s,) = scorer.score([img])
        assert s.higher_is_better == scorer.higher_is_better
        assert s.range == scorer.range
        assert math.isfinite(s.value)
    assert scorers["brisque_pypi"].score([]) == []


def test_torch_svr_agrees_with_libsvm() -> None:
    """The SVR decision function evaluated in torch equals libsvm's own predictor."""
    svmutil = pytest.importorskip("libsvm.svmutil")
    scorer = BrisqueScorer()
    imgs = [photos.photo("astronaut"), photos.noise(photos.photo("coffee"), 20)]
    ours = [s.details["raw"] for s in scorer.score(imgs)]
    from imagejury.models.quality.brisque import brisque_features, locate_brisque_model
    from imagejury.models.quality.working import make_working_copies

    model = svmutil.svm_load_model(str(locate_brisque_model()[0]))
    for copy, value in zip(make_working_copies(imgs), ours):
        row = scorer.scale(brisque_features(copy.gray[None]))[0].tolist()
        nodes, _ = svmutil.gen_svm_nodearray(row, isKernel=False)
        assert svmutil.libsvm.svm_predict(model, nodes) == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("kind", sorted(STRONG))
@pytest.mark.parametrize("name", PHOTOS)
def test_strong_distortions_score_worse(scorers: dict, name: str, kind: str) -> None:
    img = photos.photo(name)
    bad = STRONG[kind](img)
    for metric in ("brisque_pypi", "niqe", "piqe"):
        if (metric, kind) == ("brisque_pypi", "noise") and name == "coffee":
            continue  # the brisque package's SVR scores coffee 47 clean and 43 with σ30 noise
        orig, dist = (s.value for s in scorers[metric].score([img, bad]))
        assert dist > orig + 3.0, f"{metric} on {name}/{kind}: {orig:.1f} -> {dist:.1f}"


# metric -> distortions it must track monotonically (Spearman >= 0.9 over 5 levels);
# the sign says which way "worse" goes for that metric
MONOTONE = {
    "brisque_pypi": (("blur", "jpeg"), +1),
    "piqe": (("blur", "jpeg"), +1),  # noise: PIQE first *drops* at σ5 (noise adds "activity")
    "edge_sharpness": (("blur",), -1),
    "noise_sigma": (("noise",), +1),
    "blockiness": (("jpeg",), +1),
    "bright_fraction": (("exposure",), +1),
}


@pytest.mark.parametrize("metric", sorted(MONOTONE))
@pytest.mark.parametrize("name", PHOTOS)
def test_scores_fall_monotonically_with_distortion(graded_scores: dict, name: str, metric: str) -> None:
    kinds, sign = MONOTONE[metric]
    for kind in kinds:
        values = graded_scores[(name, kind)][metric]
        rho = sign * _rho(values)
        assert rho >= 0.9 - 1e-9, f"{metric} on {name}/{kind}: {np.round(values, 2).tolist()} (rho {rho:.2f})"


def test_niqe_monotone_on_astronaut(graded_scores: dict) -> None:
    """NIQE is only stable with many 96 px patches: astronaut (25)."""
    for kind in ("blur", "noise", "jpeg"):
        values = graded_scores[("astronaut", kind)]["niqe"]
        assert _rho(values) >= 0.9, f"niqe on astronaut/{kind}: {np.round(values, 2).tolist()}"


def test_uniform_and_small_images_are_handled(scorers: dict) -> None:
    flat = Image.new("RGB", (256, 256), (128, 128, 128))
    (p,) = scorers["piqe"].score([flat])
    assert p.value == 100.0  # PIQE defines a uniform image as the worst
    small = photos.photo("astronaut").resize((120, 120))
    (n,) = scorers["niqe"].score([small])
    assert math.isnan(n.value) and "192" in n.details["error"]
    tiny, ok = scorers["brisque_pypi"].score([Image.new("RGB", (8, 8)), photos.photo("chelsea")])
    assert math.isnan(tiny.value) and "at least 16" in tiny.details["error"]
    assert math.isfinite(ok.value)


def test_large_images_are_shrunk_first(scorers: dict) -> None:
    big = photos.photo("astronaut").resize((2048, 2048), Image.Resampling.BICUBIC)
    (s,) = scorers["brisque_pypi"].score([big])
    assert max(s.details["working_size"]) == 1024


def test_noise_estimate_recovers_known_sigma() -> None:
    rng = np.random.default_rng(3)
    for sigma in (2.0, 10.0, 25.0):
        flat = torch.from_numpy(128.0 + rng.normal(0.0, sigma, (256, 256)))
        assert noise_sigma(flat, edge_fraction=0.0) == pytest.approx(sigma, rel=0.1)


def test_signals_on_synthetic_images() -> None:
    grey = measure(Image.new("RGB", (200, 200), (90, 90, 90)))
    assert grey.contrast == 0.0 and grey.colourfulness == 0.0 and grey.channel_std_max == 0.0
    white = measure(Image.new("RGB", (200, 200), (255, 255, 255)))
    assert white.bright_fraction == 1.0
    # a hard 8-px checkerboard of blocks is all grid steps: far above 1
    tiles = (np.indices((128, 128)) // 8).sum(0) % 2 * 200 + 20
    blocky = measure(Image.fromarray(np.stack([tiles] * 3, -1).astype(np.uint8)))
    assert blocky.blockiness > 5.0


class _FakeEmbedder:
    """Two-dimensional stand-in: good images along x, bad along y (math check only)."""

    key = "fake-2d"
    embed_dim = 2
    context_length = 77
    logit_scale = 100.0

    def encode_images(self, images):  # type: ignore[no-untyped-def]
        rows = []
        for im in images:
            q = np.asarray(im, dtype=np.float64).mean() / 255.0  # bright = "good" here
            v = np.array([q, 1.0 - q])
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)

    def encode_texts(self, texts):  # type: ignore[no-untyped-def]
        return np.stack([np.array([1.0, 0.0]) if t.startswith("Good") else np.array([0.0, 1.0]) for t in texts])


def test_clip_iqa_softmax_over_antonyms() -> None:
    pos, neg = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert clip_iqa_from_embeddings(np.array([[1.0, 0.0]]), pos, neg, 100.0)[0] == pytest.approx(1.0)
    assert clip_iqa_from_embeddings(np.array([[0.0, 1.0]]), pos, neg, 100.0)[0] == pytest.approx(0.0)
    mid = np.array([[np.sqrt(0.5), np.sqrt(0.5)]])
    assert clip_iqa_from_embeddings(mid, pos, neg, 100.0)[0] == pytest.approx(0.5)
    # the logit scale sharpens: the same cosine gap gives a surer answer at a higher scale
    tilt = np.array([[0.8, 0.6]])
    assert clip_iqa_from_embeddings(tilt, pos, neg, 100.0)[0] > clip_iqa_from_embeddings(tilt, pos, neg, 10.0)[0]
    scorer = ClipIQAScorer(_FakeEmbedder())
    bright, dark = Image.new("RGB", (8, 8), (230,) * 3), Image.new("RGB", (8, 8), (20,) * 3)
    hi, lo = scorer.score([bright, dark])
    assert hi.value > 0.99 and lo.value < 0.01 and hi.higher_is_better
    # from precomputed embeddings gives the same numbers (what the judges use)
    again = scorer.from_embeddings(_FakeEmbedder().encode_images([bright, dark]))
    assert [s.value for s in again] == pytest.approx([hi.value, lo.value])


def test_scorers_read_16_bit_grey_and_transparency_as_the_intake_does() -> None:
    """A library caller's PIL image goes through the same 8-bit RGB conversion as an
    upload: 16-bit grey is scaled (a plain convert would read it as white), and a
    transparent cut-out sits on white."""
    import io

    from imagejury.core.intake.media import decode_image_bytes

    def uploaded(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return decode_image_bytes(buf.getvalue()).image

    ramp = np.tile(np.linspace(0, 65535, 256), (256, 1)).astype(np.uint16)
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode.startswith("I")
    cutout = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    cutout.paste((30, 60, 90, 255), (64, 64, 192, 192))
    scorer = create_scorer("signals")
    for img in (sixteen, cutout):
        direct = scorer.score([img])[0].details["report"]
        via_intake = scorer.score([uploaded(img)])[0].details["report"]
        assert direct == via_intake
    assert scorer.score([sixteen])[0].details["report"].mean_luma == pytest.approx(127.5, abs=1.0)
    assert scorer.score([cutout])[0].details["report"].bright_fraction == pytest.approx(0.75, abs=0.01)


def test_undefined_and_unmeasurable_scores_say_why() -> None:
    flat = Image.new("RGB", (300, 300), (40, 40, 40))
    for name in ("niqe", "brisque_pypi"):
        score = create_scorer(name).score([flat])[0]
        assert math.isnan(score.value) and "no natural-scene statistics" in score.details["error"], name
    tiny = Image.new("RGB", (10, 10), (40, 90, 200))
    for name in ("niqe", "brisque_pypi", "piqe"):
        score = create_scorer(name).score([tiny])[0]
        assert math.isnan(score.value) and "at least" in score.details["error"], name
    wide = create_scorer("niqe").score([Image.new("RGB", (3000, 200))])[0]
    assert "[3000, 200] image shrunk" in wide.details["error"]
