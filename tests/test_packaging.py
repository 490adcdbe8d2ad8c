"""One import root: imagejury installs only ``imagejury`` and works beside an app's own
``models.py``, ``judges.py`` and ``evaluator.py`` — as an editable install and as a wheel
in a fresh virtualenv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"evaluator": "imagejury", "judges": "imagejury.judges", "models": "imagejury.models"}

# evaluates a generated image with the pixel judge only (no weights needed) and checks
# that the plugin base class and the app's own modules are what they should be
EMBEDDED = """
import json, sys
import models, judges, evaluator                      # the app's own modules
from PIL import Image
from imagejury import Evaluator, EvaluatorConfig
from imagejury.judges import Judge
assert models.User and judges.x == 1 and evaluator.y == 2, "the app's modules were shadowed"
Image.new("RGB", (512, 384), (40, 90, 160)).save("gen.png")
off = {n: {"enabled": False} for n in ("prompt_adherence", "instructions", "attributes", "aesthetics", "safety",
        "identity", "reference_similarity", "headshot", "technical_quality")}
ev = Evaluator(EvaluatorConfig(judges=off))
res = ev.evaluate({"generated_image_url": "gen.png", "task_type": "image_generation", "job_class": "quick"})
names = [j.name for j in res.judges]
print(json.dumps({"status": res.status.value, "judges": names, "judge_base": Judge.__module__,
                  "file": __import__("imagejury").__file__}))
"""


def _app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "models.py").write_text("class User:\n    pass\n")
    (app / "judges.py").write_text("x = 1\n")
    (app / "evaluator.py").write_text("y = 2\n")
    return app


def _run_embedded(python: str, app: Path, env: dict[str, str] | None = None) -> dict:
    import json

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", **(env or {})}
    proc = subprocess.run([python, "-c", EMBEDDED], cwd=app, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_editable_install_works_beside_the_apps_own_modules(tmp_path: Path) -> None:
    out = _run_embedded(sys.executable, _app_dir(tmp_path))
    assert out["status"] == "completed" and out["judges"] == ["technical_signals"]
    assert out["judge_base"] == "imagejury.judges.base"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", *FOLDERS):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return next(out.glob("imagejury-*.whl"))


def test_wheel_installs_one_top_level_name_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["imagejury"]
    assert {n.split("/")[0] for n in names} == {"imagejury", top_level.split("/")[0]}
    for data in ("imagejury/batch/templates/report.html", "imagejury/judges/data/vocabulary.json"):
        assert data in names
    entry_points = zipfile.ZipFile(wheel).read(top_level.replace("top_level.txt", "entry_points.txt")).decode()
    assert "imagejury.judges.identity:IdentityJudge" in entry_points and "judges." not in entry_points.replace(
        "imagejury.judges", ""
    )


@pytest.mark.slow
def test_wheel_in_a_fresh_virtualenv_works_beside_the_apps_own_modules(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # the dependencies (torch, pillow, ...) come from this environment's site-packages, read
    # as a plain path: its .pth files (the editable install's finder) are not processed
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "PIL").is_dir())
    (site / "zz_dependencies.pth").write_text(f"{deps}\n")
    out = _run_embedded(str(venv / "bin" / "python"), _app_dir(tmp_path))
    assert out["status"] == "completed" and out["judges"] == ["technical_signals"]
    assert out["file"].startswith(str(site)), out["file"]
