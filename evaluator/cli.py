"""The ``imagejury`` command: evaluate, models, batch, serve.

Exit codes of ``evaluate``: 0 passed, 1 evaluated and failed, 2 invalid input (a bad
flag or request, or ``invalid_media``), 3 the evaluation could not be carried out
(``processing_failed``, e.g. a model that is not available here; ``fetch_failed``, the
network did not deliver the image), 4 incomplete: every check that ran passed, but an
applicable check was skipped (``--allow-missing-models`` and a model missing), so there
is no verdict to trust — never a bare PASS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagejury.batch.manifest import parse_scalar
from imagejury.core.options import add_model_flags, config_from_args
from imagejury.errors import ImagejuryError, InvalidRequestError
from imagejury.judges.taxonomy import REFERENCE_KINDS, TASK_TYPES, known_values

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID, EXIT_PROCESSING, EXIT_INCOMPLETE = 0, 1, 2, 3, 4
log = logging.getLogger("imagejury")


def _kv(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise InvalidRequestError(f"{what} must look like KEY=VALUE, got '{text}'")
    k, v = text.split("=", 1)
    if not k.strip():
        raise InvalidRequestError(f"{what} has an empty key: '{text}'")
    return k.strip(), v


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    refs = []
    for text in args.ref or []:
        kind, path = _kv(text, "--ref")
        refs.append({"url": path, "kind": kind})
    attrs = dict((k, parse_scalar(v)) for k, v in (_kv(t, "--attr") for t in args.attr or []))
    req: dict[str, Any] = {"generated_image_url": args.image, "task_type": args.task_type, "job_class": args.job_class}
    optional = {
        "generation_prompt": args.prompt,
        "evaluation_instructions": args.instructions,
        "task_description": args.task_description,
        "client_ref": args.client_ref,
    }
    req.update({k: v for k, v in optional.items() if v is not None})
    if attrs:
        req["input_attributes"] = attrs
    if refs:
        req["reference_images"] = refs
    return req


def cmd_evaluate(args: argparse.Namespace) -> int:
    from imagejury.core.pipeline import Evaluator

    try:
        config = config_from_args(args)
        request = build_request(args)
        evaluator = Evaluator(config, allow_local_paths=True)
        evaluation = evaluator.evaluate(request, base_dir=Path.cwd())
    except ImagejuryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID if exc.is_bad_input else EXIT_PROCESSING
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for issue in (evaluation.check_summary or {}).get("input_issues", []):
        print(f"warning: {issue['message']} (set [evaluation] strict = true to refuse)", file=sys.stderr)
    if args.json:
        print(json.dumps(evaluation.to_api(), indent=2))
    else:
        print(render_summary(evaluation))
    return exit_code(evaluation)


def exit_code(ev: Any) -> int:
    """The documented exit code of ``evaluate`` for one evaluation (see the module docstring)."""
    if ev.status == "failed":
        return EXIT_INVALID if ev.failure_code == "invalid_media" else EXIT_PROCESSING
    if headline(ev) == "INCOMPLETE":
        return EXIT_INCOMPLETE
    return EXIT_PASSED if ev.overall_passed else EXIT_FAILED


def headline(ev: Any) -> str:
    """PASS, FAIL or INCOMPLETE. A skipped applicable check never reads as a bare PASS:
    INCOMPLETE when nothing that ran failed (the skipped check could have failed it)."""
    summary = ev.check_summary or {}
    failed_something = bool(ev.gate_failures) or any(not j.passed for j in ev.judges or [])
    if summary.get("incomplete") and (ev.overall_passed or not failed_something):
        return "INCOMPLETE"
    return "PASS" if ev.overall_passed else "FAIL"


def render_summary(ev: Any) -> str:
    """A readable verdict: the headline, each judge with its vote and reason, the action."""
    lines = []
    if ev.status == "failed":
        code = getattr(ev.failure_code, "value", ev.failure_code)
        lines.append(f"FAILED TO EVALUATE ({code}): {ev.failure_message}")
        return "\n".join(lines)
    verdict = headline(ev)
    summary = ev.check_summary or {}
    over = " over the checks that ran" if summary.get("incomplete") else ""
    lines.append(
        f"{verdict}  weighted pass rate {ev.weighted_pass_rate:.2f}{over} (needs {summary.get('pass_threshold', 0):.2f}, "
        f"preset {summary.get('preset')}, job class {summary.get('job_class')})"
    )
    if summary.get("incomplete"):
        names = ", ".join(s["judge"] for s in summary.get("skipped_checks", []))
        lines.append(f"  incomplete: not run: {names} — no verdict to trust until they run")
    if ev.override_reason:
        lines.append(f"  override: {ev.override_reason}")
    for j in ev.judges or []:
        mark = "pass" if j.passed else "FAIL"
        lines.append(f"  [{mark}] {j.name:<22} w={j.weight:<4g} conf={j.confidence:.2f}  {j.reasoning}")
        for issue in j.issues:
            lines.append(f"         - {issue.subcategory}: {issue.detail}")
    for g in ev.gate_failures or []:
        lines.append(f"  [GATE] {g.module}/{g.output_key}: {g.reason}")
    lines += _skip_lines(summary)
    if summary.get("not_applicable"):
        lines.append(f"  not applicable: {', '.join(summary['not_applicable'])}")
    if ev.action is not None:
        lines.append(f"action: {ev.action.primary_action}")
        if ev.action.failure_summary:
            lines.append(f"  {ev.action.failure_summary}")
        if ev.action.improved_prompt:
            lines.append(f"  improved prompt: {ev.action.improved_prompt}")
    return "\n".join(lines)


def _skip_lines(summary: dict[str, Any]) -> list[str]:
    """One line per missing model (the judges it feeds and, once, how to supply it), then
    one per other cause."""
    lines = []
    for m in summary.get("missing_models", []):
        lines.append(
            f"  [skip] {', '.join(m['judges'])}: {m.get('how_to') or 'model ' + m['model'] + ' not available'}"
        )
        lines.append("         (run `imagejury models` to see every model and where it is looked for)")
    by_reason: dict[str, list[str]] = {}
    for s in summary.get("skipped_checks", []):
        if s.get("model") is None:
            by_reason.setdefault(s.get("detail") or s["reason"], []).append(s["judge"])
    for reason, names in by_reason.items():
        lines.append(f"  [skip] {', '.join(names)}: {reason}")
    return lines


def cmd_models(args: argparse.Namespace) -> int:
    from imagejury.models.provider import ModelSet

    try:
        config = config_from_args(args)
    except ImagejuryError as exc:  # a bad flag or config file
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    rows = ModelSet(config.models.settings()).availability()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        state = "available" if r.available else "MISSING"
        print(f"{r.kind:<11} {r.name:<{width}}  {state:<9}  {r.where}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    from imagejury import __version__

    parser = argparse.ArgumentParser(
        prog="imagejury", description="Evaluate AI-generated images with a jury of open models."
    )
    parser.add_argument("--version", action="version", version=f"imagejury {__version__}")
    add_verbosity_flags(parser, default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="evaluate one image")
    ev.add_argument("image", help="image path, https:// URL or data: URI")
    ev.add_argument("--prompt", help="the generation prompt")
    ev.add_argument(
        "--task-type",
        default="image_generation",
        help=f"task type (case-insensitive; aliases in brackets): {known_values(TASK_TYPES)}",
    )
    ev.add_argument("--task-description")
    ev.add_argument("--instructions", help="free-text rubric")
    ev.add_argument(
        "--ref",
        action="append",
        metavar="KIND=PATH",
        help=f"reference image (identity=me.jpg); up to 4. Kinds: {known_values(REFERENCE_KINDS)}",
    )
    ev.add_argument("--attr", action="append", metavar="KEY=VALUE", help="input attribute (style=corporate)")
    ev.add_argument("--job-class", default="standard", help="standard or quick")
    ev.add_argument("--client-ref")
    ev.add_argument("--json", action="store_true", help="print the API JSON instead of the summary")
    add_model_flags(ev)
    ev.set_defaults(func=cmd_evaluate)

    mo = sub.add_parser("models", help="list the configured models and whether each is available here")
    mo.add_argument("--json", action="store_true")
    add_model_flags(mo)
    mo.set_defaults(func=cmd_models)

    for module in ("imagejury.batch.cli", "imagejury.service.cli", "imagejury.calibrate.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(sub, add_model_flags)
    for command in sub.choices.values():  # -v / -q work after the sub-command too
        add_verbosity_flags(command, default=argparse.SUPPRESS)
    return parser


def add_verbosity_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v`` (info), ``-vv`` (debug) and ``-q`` (errors only). On a sub-command the
    default is SUPPRESS, so a flag given before the sub-command is not reset by it."""
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="count", default=default, help="less logging (errors only)")


def log_level(verbose: int, quiet: int) -> int:
    """WARNING by default; each -v one level more detail (-vv: DEBUG), -q: ERROR."""
    if quiet:
        return logging.ERROR
    return max(logging.DEBUG, logging.WARNING - 10 * verbose)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = make_parser()
    args = parser.parse_args(argv)
    level = log_level(args.verbose, args.quiet)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # basicConfig does nothing when a library already configured the root logger on
    # import; the level the user asked for must hold all the same (-vv shows debug)
    logging.getLogger().setLevel(level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
