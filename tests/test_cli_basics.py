"""What a newcomer meets first: --version, verbosity flags anywhere, --device auto, and
config errors as one plain sentence (never a pydantic dump, never a secret)."""

from __future__ import annotations

import logging

import pytest

from imagejury import __version__
from imagejury.cli import EXIT_INVALID, log_level, main, make_parser
from imagejury.core.config import EvaluatorConfig
from imagejury.errors import ConfigError
from imagejury.models.settings import ModelSettings, resolve_device


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"imagejury {__version__}"


@pytest.mark.parametrize(
    "argv, level",
    [
        (["models"], logging.WARNING),
        (["-v", "models"], logging.INFO),
        (["models", "-v"], logging.INFO),
        (["models", "-vv"], logging.DEBUG),
        (["-vv", "models"], logging.DEBUG),
        (["models", "-vvv"], logging.DEBUG),
        (["models", "-q"], logging.ERROR),
        (["-q", "batch", "x", "-o", "y"], logging.ERROR),
        (["serve", "-vv"], logging.DEBUG),
    ],
)
def test_verbosity_before_or_after_the_subcommand(argv: list[str], level: int) -> None:
    args = make_parser().parse_args(argv)
    assert log_level(args.verbose, args.quiet) == level


def test_debug_logs_really_show_even_when_logging_was_configured(capsys) -> None:
    root = logging.getLogger()
    before = root.level
    handler = logging.StreamHandler()
    root.addHandler(handler)  # as a library that configures logging on import would
    try:
        main(["models", "--json", "-vv"])
        assert root.getEffectiveLevel() == logging.DEBUG
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def test_device_defaults_to_auto_and_resolves(monkeypatch) -> None:
    assert EvaluatorConfig().models.device == "auto"
    assert ModelSettings().device == "auto"
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"


def test_unknown_config_key_is_one_sentence_with_a_suggestion(tmp_path, capsys) -> None:
    cfg = tmp_path / "imagejury.toml"
    cfg.write_text('[models]\nclipp = "whsec_c2VjcmV0LXZhbHVlLWRvLW5vdC1wcmludA=="\n')
    code = main(["models", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID
    assert err.strip() == f"error: {cfg}: unknown key 'clipp' in [models] (did you mean 'clip'?)"
    assert "whsec_" not in err and "Traceback" not in err and "pydantic" not in err


def test_bad_value_names_the_key_and_what_it_accepts(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models]\ndevice = "tpu-secret-value"\n')
    with pytest.raises(ConfigError) as err:
        EvaluatorConfig.from_file(cfg)
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: 'device' in [models]: must be auto")
    assert "tpu-secret-value" not in msg


def test_bad_flag_names_the_flag(capsys) -> None:
    assert main(["models", "--device", "tpu"]) == EXIT_INVALID
    assert "--device: must be auto" in capsys.readouterr().err


def test_unknown_section_and_bad_toml(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[modles]\nclip = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modles' \(did you mean 'models'\?\)"):
        EvaluatorConfig.from_file(cfg)
    cfg.write_text("[models\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        EvaluatorConfig.from_file(cfg)
    with pytest.raises(ConfigError, match="config file not found"):
        EvaluatorConfig.from_file(tmp_path / "missing.toml")
