"""The example config file is valid, and typos in a config are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagejury.core.config import EvaluatorConfig
from imagejury.errors import ConfigError
from imagejury.service.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads_and_server_section_validates():
    config = EvaluatorConfig.from_file(ROOT / "imagejury.example.toml")
    assert config.models.face_backend == "dlib"
    assert config.evaluation.batch_size == 16
    ServerSettings.model_validate(config.server)


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[models]\nclipp = 'ViT-B-32:openai'\n")
    with pytest.raises(ConfigError, match="clipp"):
        EvaluatorConfig.from_file(bad)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        EvaluatorConfig.from_file(tmp_path / "nope.toml")


def test_flags_override_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[models]\ndevice = 'cpu'\nclip = 'ViT-B-32:openai'\n")
    config = EvaluatorConfig.from_file(f).with_overrides(clip="local-dir:/x", device=None)
    assert config.models.clip == "local-dir:/x" and config.models.device == "cpu"
