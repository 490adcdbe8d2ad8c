"""The benchmark scripts run end to end in a tiny configuration and print their tables.

Why: benchmarks rot silently when the code under them changes. These runs use the
committed tiny shapes CLIP (no random ViT-B-32: building one takes seconds per instance)
and a handful of images, and check structure and invariants that hold whatever the
machine's speed: the pipeline runs each image through CLIP once while the naive baseline
runs it once per CLIP check; the identity ROC covers real same/different pairs; the
public-set path scores a TIFA-format file end to end. No wall-clock assertions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support import shapes

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "assets" / "tiny_shapes_clip"
needs_tiny = pytest.mark.skipif(not TINY.is_dir(), reason="tests/assets/tiny_shapes_clip is not built")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(text: str, header_start: str) -> list[list[str]]:
    """Body rows of the first Markdown table whose header starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    out = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        out.append([c.strip() for c in ln.strip("|").split("|")])
    return out


@needs_tiny
def test_throughput_tiny_run_prints_tables(tmp_path, capsys):
    from benchmarks import throughput

    out = tmp_path / "throughput.md"
    rc = throughput.main(
        [
            "--images",
            "2",
            "--batch-sizes",
            "1,2",
            "--presets",
            "image_generation",
            "--job-classes",
            "quick",
            "--threads",
            "1",
            "--arch",
            f"local-dir:{TINY}",
            "--out",
            str(out),
            "--gpu-section-on-cpu",
            "--gpu-images",
            "1",
            "--gpu-standard-images",
            "1",
            "--gpu-dtypes",
            "float32",
            "--gpu-presets",
            "image_generation",
        ]
    )
    assert rc == 0
    text = out.read_text()
    assert text in capsys.readouterr().out
    assert text.startswith("# Throughput") and "Machine: nproc=" in text and "Command: `" in text

    runs = _rows(text, "| preset | job class | batch | images | images/s")
    assert [r[:4] for r in runs] == [["image_generation", "quick", "1", "2"], ["image_generation", "quick", "2", "2"]]
    for r in runs:
        assert float(r[4]) > 0 and float(r[5]) > 0  # images/s, p50 latency
        assert r[8] == "1.0"  # one CLIP image pass per image in the pipeline

    compare = _rows(text, "| preset | job class | images | batch | pipeline s/img")
    assert len(compare) == 1
    passes = compare[0][9]  # "pipeline vs naive"
    ours, naive = (float(x) for x in passes.split(" vs "))
    # quick image_generation: prompt_adherence, instructions, attributes and safety each run their own CLIP pass
    assert ours == 1.0 and naive == 4.0
    assert re.fullmatch(r"\d+\.\d+×", compare[0][6])

    overhead = _rows(text, "| preset | job class | batch | end-to-end s")
    assert overhead and "clip image" in overhead[0][6] and "clip text" in overhead[0][6]
    judges = {r[3] for r in _rows(text, "| preset | job class | batch | judge")}
    assert {"prompt_adherence", "instructions", "attributes", "safety", "technical_signals"} <= judges

    gpu = _rows(text, "| preset | job class | CLIP | dtype")
    assert {r[1] for r in gpu} == {"quick", "standard"}
    assert all(float(r[8]) > 0 for r in gpu)  # image-tower GFLOP counted by FlopCounterMode


@needs_tiny
def test_accuracy_tiny_run_prints_tables(tmp_path, capsys):
    from benchmarks import accuracy

    # a TIFA-format file on shape images: right captions rated high, wrong ones low
    rng = np.random.default_rng(5)
    images = tmp_path / "images"
    images.mkdir()
    data = {}
    for i, (colour, shape) in enumerate(
        [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "cross")] * 2
    ):
        shapes.render(colour, shape, rng).save(images / f"{i}.png")
        right = i < 4
        wrong_colour = "purple" if colour != "purple" else "orange"
        data[str(i)] = {
            "image_path": f"{i}.png",
            "text": f"a {colour} {shape}" if right else f"a {wrong_colour} {shape}",
            "human_avg": 5.0 - i * 0.1 if right else 1.0 + i * 0.1,
            "clipscore_vitb32": float(i),
        }
    tifa = tmp_path / "tifa.json"
    tifa.write_text(json.dumps(data))

    out = tmp_path / "accuracy.md"
    rc = accuracy.main(
        [
            "--identity-people",
            "3",
            "--identity-variants",
            "3",
            "--quality-photos",
            "1",
            "--quality-kinds",
            "blur,jpeg",
            "--text-judges",
            "skip",
            "--tifa",
            str(tifa),
            "--tifa-images",
            str(images),
            "--clip",
            f"local-dir:{TINY}",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = out.read_text()
    assert text in capsys.readouterr().out

    ident = dict((r[0], r[1]) for r in _rows(text, "| at the backend threshold"))
    assert 0.5 <= float(ident["ROC AUC"]) <= 1.0
    counts = _rows(text, "| pairs | same | different")[0]
    assert int(counts[1]) > 0 and int(counts[2]) > 0
    assert _rows(text, "| FPR ≤ | TPR")

    quality = _rows(text, "| score | blur | jpeg")
    assert {r[0] for r in quality} >= {"brisque_pypi ↓", "NIQE ↓", "PIQE ↓", "technical_quality score ↑"}
    brisque = next(r for r in quality if r[0] == "brisque_pypi ↓")
    assert float(brisque[1]) > 0.5  # BRISQUE worsens with blur on a real photo
    assert "calibration photos: astronaut" in text and "held-out photos: camera" in text

    # public set: reference correlation from the file itself, and the judge wired to the right images
    from scipy.stats import spearmanr

    expect = spearmanr(
        [r["human_avg"] for r in data.values()], [r["clipscore_vitb32"] for r in data.values()]
    ).statistic
    assert f"= {expect:.3f} (published: 0.33" in text
    row = _rows(text, "| set | rows scored")[0]
    assert row[0] == "TIFA v1.0" and int(row[1]) + int(row[7]) == 8
    assert float(row[2]) > 0.5  # prompt_adherence ranks right captions above wrong ones

    thresholds = _rows(text, "| judge / model | field")
    fields = {(r[0], r[1]) for r in thresholds}
    assert ("technical_quality", "max_brisque_pypi") in fields and ("safety", "threshold") in fields
    assert all(r[3] for r in thresholds)  # every threshold has a provenance class


@needs_tiny
def test_stage_profile_tiny_run_times_every_stage(tmp_path, capsys):
    """Every stage the request really runs shows up with time; the ones it does not run
    (faces without a reference, NSS on quick) stay at zero; the shares add up."""
    from benchmarks import stage_profile

    out = tmp_path / "stages.md"
    tiny = f"local-dir:{TINY}"
    rc = stage_profile.main(
        ["--images", "1", "--size", "256", "--threads", "1", "--standard-clip", tiny, "--quick-clip", tiny]
        + ["--out", str(out), "--before", str(ROOT), "--before-rounds", "1"]  # "before": this checkout itself
    )
    assert rc == 0
    text = out.read_text()
    assert text in capsys.readouterr().out and "load average" in text
    before = {
        r[0]: [float(v.rstrip("%")) for c in r[1:] for v in c.split(" · ")] for r in _rows(text, "| preset / job class")
    }
    assert set(before) == {
        "image_generation / standard",
        "headshot / standard",
        "image_generation / quick",
        "headshot / quick",
    }
    assert all(v > 0 for cells in before.values() for v in cells)
    rows = {r[0]: r[1:] for r in _rows(text, "| stage |")}
    cols = ["image_generation/standard", "headshot/standard", "image_generation/quick", "headshot/quick"]

    def ms(stage: str) -> dict[str, float]:
        return {c: float(cell.split(" · ")[0]) for c, cell in zip(cols, rows[stage])}

    for stage in ("decode", "CLIP image", "CLIP text", "resize / working copy", "pixel: signals"):
        assert all(v > 0 for v in ms(stage).values()), stage
    faces = ms("face detect + embed")
    assert faces["headshot/standard"] > 0 and faces["headshot/quick"] > 0
    assert faces["image_generation/standard"] == 0 and faces["image_generation/quick"] == 0
    for measure in ("pixel: brisque_pypi", "pixel: piqe"):
        m = ms(measure)
        assert m["image_generation/standard"] > 0 and m["image_generation/quick"] == 0, measure
    shares = [
        sum(float(rows[s][k].split(" · ")[1].rstrip("%")) for s in rows if not s.startswith("**")) for k in range(4)
    ]
    assert all(abs(s - 100) < 1 for s in shares)
    assert "of its CLIP image forward" in text


def test_stage_timer_counts_nested_time_once(monkeypatch):
    """A stage inside another is subtracted from its parent (exclusive times)."""
    from benchmarks import stage_profile

    ticks = [0.0, 1.0, 4.0, 10.0]  # outer starts, inner starts, inner ends, outer ends
    monkeypatch.setattr(stage_profile.time, "perf_counter", lambda: ticks.pop(0) if ticks else 10.0)
    timer = stage_profile.StageTimer()
    with timer.stage("outer"), timer.stage("inner"):
        pass
    assert timer.take() == {"outer": 7.0, "inner": 3.0}


@pytest.mark.parametrize("call", ["many", "iter"])
def test_streaming_memory_tiny_run_prints_its_table(capsys, call):
    """The memory benchmark's child process runs the real evaluate_many (or evaluate_iter,
    keeping no result) and reports back."""
    from benchmarks import streaming_memory

    streaming_memory.main(
        ["--counts", "3", "--size", "64", "--batch-size", "2"] + (["--iter"] if call == "iter" else [])
    )
    rows = _rows(capsys.readouterr().out, "| requests |")
    assert [r[:5] for r in rows] == [["3", "64", "2", f"evaluate_{call}", "3/3"]]
    assert float(rows[0][6]) > 0  # peak RSS MiB


def _checkout_copy(tmp_path: Path) -> Path:
    """The package folders of this checkout copied elsewhere: an "older checkout" whose
    modules can be told apart from ours by their files."""
    import shutil

    for folder in ("evaluator", "judges", "models"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_pixel_speed_loads_the_older_checkout_from_its_own_files(tmp_path):
    """The ``--before`` measures run the checkout's modules, not a fallback to the
    installed package (which holds the same code here, so only the files tell)."""
    import inspect

    from benchmarks import pixel_speed

    old = _checkout_copy(tmp_path)
    standard, quick = pixel_speed.pixel_sets_of_checkout(old, "cpu")
    for measure in (standard, quick):
        module = inspect.getclosurevars(measure).nonlocals["working"]
        assert Path(module.__file__).is_relative_to(old)


def test_pixel_speed_times_every_stage_and_an_older_checkout(capsys, tmp_path):
    """``--before`` loads another checkout's pixel measures beside ours in one process,
    and our modules are back in place afterwards."""
    import imagejury.models.quality as ours
    from benchmarks import pixel_speed

    old = _checkout_copy(tmp_path)
    pixel_speed.main(["--repeats", "1", "--threads", "1", "--no-clip", "--size", "96", "--before", str(old)])
    out = capsys.readouterr().out
    assert "96×96 input" in out  # --size sets the input measured
    stages = {row[0] for row in _rows(out, "| stage")}
    assert {"signals", "niqe", "piqe", "brisque_pypi", "before: standard pixel measures (all)"} <= stages
    import imagejury.models.quality as again

    assert again is ours
    with pytest.raises(SystemExit):  # a folder that is not a checkout is refused, not timed as ours
        pixel_speed.main(["--repeats", "1", "--no-clip", "--before", str(ROOT / "docs")])


def test_pixel_groups_counts_fewer_operations_per_image_in_a_group(capsys):
    """The accelerator grouping is forced on CPU for the count and put back afterwards."""
    from benchmarks import pixel_groups
    from imagejury.models.quality import nss, working

    before = nss.BAND_VALUES, working.GROUP_ON_CPU
    pixel_groups.main(["--size", "48", "--groups", "1", "3", "--threads", "1"])
    rows = _rows(capsys.readouterr().out, "| set")
    per_image = {(r[0], int(r[1])): float(r[3]) for r in rows}
    assert all(int(r[4]) == 0 for r in rows)  # no device to synchronise with on CPU
    for label in ("quick", "standard"):
        assert per_image[(label, 3)] < per_image[(label, 1)] / 2, label
    assert before == (nss.BAND_VALUES, working.GROUP_ON_CPU)


def test_graphics_quality_judges_the_drawn_size_or_its_half(monkeypatch, capsys):
    """``--size`` draws the graphics at that size and ``--half`` hands the judges each image
    halved: a recording judge sees exactly those sizes, clean and degraded alike."""
    from types import SimpleNamespace

    from benchmarks import graphics_quality

    seen: list[tuple[int, int]] = []

    class Recorder:
        name = "technical_signals"

        def judge(self, items):
            seen.extend(item.image.size for item in items)
            return [SimpleNamespace(passed=True, reasoning="") for _ in items]

    monkeypatch.setattr(graphics_quality, "judges", lambda: [Recorder()])
    counts, _ = graphics_quality.evaluate("calibration", 1, size=64, half=True)
    assert seen and set(seen) == {(32, 32)}
    assert counts[("technical_signals", "clean")] == [len(graphics_quality.graphics.KINDS)] * 2
    seen.clear()
    graphics_quality.evaluate("calibration", 1, size=64)
    assert set(seen) == {(64, 64)}
    with pytest.raises(SystemExit):
        graphics_quality.main(["--photos", "--half"])
    graphics_quality.main(["--split", "calibration", "--seeds", "1", "--size", "64", "--half"])
    out = capsys.readouterr().out
    assert "judged at 32 px (drawn at 64, halved)" in out
    assert "under the judges' low-resolution floor of 256 px" in out  # a table that means nothing says so
