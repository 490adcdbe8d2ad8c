"""The README's commands work when pasted: the library snippet runs as printed, the
service example's environment is accepted, and every ``imagejury`` command line in it
parses with the real argument parser."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from imagejury.cli import make_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _command_lines() -> list[str]:
    """``imagejury ...`` lines of the bash blocks, continuation lines joined, comments cut."""
    lines = []
    for block in _blocks("bash"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("imagejury ") and "..." not in line:
                lines.append(line)
    return lines


def test_library_snippet_runs_as_printed() -> None:
    snippet = next(b for b in _blocks("python") if "from imagejury import Evaluator" in b)
    snippet = snippet.replace("many = ev.evaluate_many([...])", "many = ev.evaluate_many([])")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "completed", proc.stdout


@pytest.mark.parametrize("line", _command_lines())
def test_every_imagejury_command_in_the_readme_parses(line: str) -> None:
    argv = shlex.split(line)[1:]
    make_parser().parse_args(argv)  # SystemExit (exit 2) on an unknown flag or a missing argument


def test_service_example_environment_is_accepted() -> None:
    from imagejury.service.settings import ServerSettings

    exports = dict(re.findall(r'^export (IMAGEJURY_[A-Z_]+)="(.*)"', README, flags=re.M))
    assert set(exports) == {"IMAGEJURY_TOKENS", "IMAGEJURY_WEBHOOK_SECRET"}
    secret = subprocess.run(
        ["bash", "-c", f'echo "{exports["IMAGEJURY_WEBHOOK_SECRET"]}"'], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert secret.startswith("whsec_")
    settings = ServerSettings.load(
        env={"IMAGEJURY_TOKENS": exports["IMAGEJURY_TOKENS"], "IMAGEJURY_WEBHOOK_SECRET": secret}
    )
    assert settings.webhook_key is not None and len(settings.tokens) == 2
