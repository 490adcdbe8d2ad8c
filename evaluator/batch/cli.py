"""``imagejury batch``: grade a manifest or a folder of images into a JSONL file, resumably.

Exit codes: 0 the batch ran (rows that failed or were invalid are in the output, with
their ``failure_code``); 2 the input or the options cannot be used (no such manifest,
unknown format, a directory without ``--task-type``, a bad option, rows already in the
output evaluated with other settings and no ``--overwrite``); 3 the evaluator could not
be set up (a judge plugin that does not load, a model that is not here and no
``--allow-missing-models``, a CUDA device that is not here); 4 rows were written but none
could be evaluated (every one failed or was invalid); 130 interrupted (Ctrl-C; re-run
to resume).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INVALID, EXIT_SETUP, EXIT_NOTHING_EVALUATED, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
log = logging.getLogger("imagejury.batch")


def register(sub: Any, add_model_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "batch",
        help="evaluate a JSONL/CSV/Parquet manifest or a directory of images into a JSONL file (resumable)",
        description="Evaluate many images. Re-running the same command resumes: rows already in the output are skipped.",
    )
    p.add_argument(
        "input", metavar="MANIFEST_OR_DIR", help="a .jsonl/.csv/.parquet manifest of requests, or a directory of images"
    )
    p.add_argument("-o", "--output", required=True, help="results file (JSONL, one evaluation per line; appended)")
    p.add_argument(
        "--format", choices=["jsonl", "csv", "parquet", "directory"], help="input format (default: from the suffix)"
    )
    p.add_argument("--report", metavar="HTML", help="also write a self-contained HTML report of the whole output")
    p.add_argument("--report-limit", type=int, default=5000, help="most images shown in the report grid (default 5000)")
    p.add_argument("--parquet-out", metavar="PARQUET", help="also write the results as Parquet (needs pyarrow)")
    p.add_argument("--batch-size", type=int, help="images per judge batch (default: config, 16)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 2),
        help="decode threads (default: CPU count, at most 8)",
    )
    p.add_argument(
        "--prefetch", type=int, help="decoded images waiting ahead of the models (default 2 batches + workers)"
    )
    p.add_argument(
        "--draft-size", type=int, help="decode JPEGs at reduced scale, no smaller than this many pixels a side"
    )
    p.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="local threads + one process, or Ray Data"
    )
    p.add_argument("--ray-address", help="Ray cluster address (default: start or join a local Ray)")
    p.add_argument(
        "--actors",
        type=int,
        default=1,
        help="Ray engine: judge actors (one model set each; one GPU each with --device cuda)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-run rows that failed for reasons outside the row (processing_failed)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-evaluate rows already in the output whose request or model/judge settings differ from this "
        "run's (without it such a resume is refused)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    g = p.add_argument_group("shared request fields (a directory's rows; defaults for manifest rows that lack them)")
    g.add_argument("--task-type", help="task type (directory default: image_generation)")
    g.add_argument("--job-class", help="standard or quick")
    g.add_argument("--prompt", help="directory input: the generation prompt of every image")
    g.add_argument("--instructions", help="directory input: the rubric of every image")
    g.add_argument("--task-description", help="directory input: the task description of every image")
    add_model_flags(p)
    p.set_defaults(func=cmd_batch)


def _config(args: argparse.Namespace) -> Any:
    from imagejury.core.options import config_from_args

    config = config_from_args(args)
    updates: dict[str, Any] = {}
    if args.batch_size is not None:
        updates["batch_size"] = args.batch_size
    if args.draft_size is not None:
        updates["draft_size"] = args.draft_size
    if updates:
        evaluation = config.evaluation.model_validate({**config.evaluation.model_dump(), **updates})
        config = config.model_copy(update={"evaluation": evaluation})
    return config


def cmd_batch(args: argparse.Namespace) -> int:
    """Run ``imagejury batch``; a Ctrl-C ends it with one line (the output stays resumable)."""
    try:
        return _cmd_batch(args)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the rows finished so far are in {args.output}; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _open_input(args: argparse.Namespace) -> tuple[Any, Any] | int:
    """The config and the opened manifest, or an exit code after saying what is wrong."""
    from pydantic import ValidationError

    from imagejury.batch.manifest import ManifestError, open_manifest
    from imagejury.core.schema import parse_request
    from imagejury.errors import InvalidRequestError

    for name in ("workers", "actors", "report_limit", "prefetch"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return EXIT_INVALID
    try:
        config = _config(args)
        shared = {
            "task_type": args.task_type or "image_generation",
            "job_class": args.job_class,
            "generation_prompt": args.prompt,
            "evaluation_instructions": args.instructions,
            "task_description": args.task_description,
        }
        # a bad shared flag (--job-class turbo, a 101-char --task-type) is one error now,
        # not the same rejected row repeated for every image of the batch
        parse_request({"generated_image_url": "probe.png", **{k: v for k, v in shared.items() if v is not None}})
        manifest = open_manifest(args.input, shared=shared, fmt=args.format)
    except (ManifestError, ValidationError, ValueError, FileNotFoundError, InvalidRequestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if manifest.kind != "directory" and (args.prompt or args.instructions or args.task_description):
        print(
            "error: --prompt/--instructions/--task-description apply to a directory input; "
            "a manifest carries them per row",
            file=sys.stderr,
        )
        return EXIT_INVALID
    output = Path(args.output)
    if output.exists() and output.is_dir():
        print(f"error: the output {output} is a directory; give a file name", file=sys.stderr)
        return EXIT_INVALID
    return config, manifest


def _cmd_batch(args: argparse.Namespace) -> int:
    opened = _open_input(args)
    if isinstance(opened, int):
        return opened
    config, manifest = opened
    if args.engine == "local":
        problem = check_device(config.models.device) or check_models(config)
    else:  # the actors hold the models; the driver only checks that they are there, on its CPU
        problem = check_models(config.model_copy(update={"models": config.models.model_copy(update={"device": "cpu"})}))
        from imagejury.models.registry import default_registry

        default_registry().clear()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_SETUP

    from imagejury.batch.engine import BatchOptions

    options = BatchOptions(
        batch_size=config.evaluation.batch_size,
        workers=args.workers,
        prefetch=args.prefetch,
        defaults={"task_type": args.task_type, "job_class": args.job_class},
        retry_failed=args.retry_failed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    ran = _run(args, config, manifest, options)
    if isinstance(ran, int):
        return ran
    stats, judge_seconds = ran
    return _finish(args, manifest, stats, judge_seconds)


def _run(args: argparse.Namespace, config: Any, manifest: Any, options: Any) -> tuple[Any, dict[str, float]] | int:
    """Run the chosen engine; an exit code when it cannot start."""
    from pydantic import ValidationError

    from imagejury.batch.engine import OutputBusyError, SettingsChangedError
    from imagejury.batch.manifest import ManifestError

    refused = (ManifestError, OutputBusyError, SettingsChangedError)
    if args.engine == "ray":
        from imagejury.batch.ray_engine import RayBatchError, run_ray_batch

        try:
            return run_ray_batch(
                config, manifest, Path(args.output), options, address=args.ray_address, actors=args.actors
            )
        except RayBatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_SETUP
        except refused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
    from imagejury.batch.engine import LocalBatch
    from imagejury.core.pipeline import Evaluator
    from imagejury.judges.registry import JudgeRegistryError

    evaluator = Evaluator(config, allow_local_paths=True)
    try:  # build the judge pools now: a broken plugin should stop us before row one
        for jc in ("standard", "quick"):
            evaluator.pool(jc)
    except (JudgeRegistryError, ValidationError) as exc:
        print(f"error: the judges could not be set up: {exc}", file=sys.stderr)
        return EXIT_SETUP
    try:
        stats = LocalBatch(evaluator, manifest, Path(args.output), options).run()
    except refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return stats, evaluator.judge_seconds


def _finish(args: argparse.Namespace, manifest: Any, stats: Any, judge_seconds: dict[str, float]) -> int:
    """Summary, hints, Parquet and report; the exit code of a run that happened."""
    from imagejury.batch.engine import jsonl_to_parquet
    from imagejury.batch.progress import render_summary

    print(render_summary(stats, judge_seconds), file=sys.stderr)
    hint = retry_hint(stats, Path(args.output))
    if hint:
        print(hint, file=sys.stderr)
    if args.parquet_out:
        n = jsonl_to_parquet(args.output, args.parquet_out)
        print(f"wrote {n} rows to {args.parquet_out}", file=sys.stderr)
    if args.report:
        from imagejury.batch.report import write_report

        n = write_report(args.output, args.report, base_dir=manifest.base_dir, limit=args.report_limit)
        print(f"wrote the report of {n} evaluations to {args.report}", file=sys.stderr)
    if stats.done and not stats.completed:
        print(
            f"error: none of the {stats.done} rows written could be evaluated (see their failure_code)", file=sys.stderr
        )
        return EXIT_NOTHING_EVALUATED
    return EXIT_OK


def retry_hint(stats: Any, output: Path) -> str | None:
    """Say so when rows failed for reasons outside the row (``processing_failed``): a plain
    re-run skips them, and only ``--retry-failed`` evaluates them again. Counts this run's
    rows, or — when the run resumed an output — every such row in the output."""
    from imagejury.batch.engine import ROW_FAILURES, ResultsFile, retryable

    if stats.already_done:
        outside: Counter = Counter(str(r.get("failure_code")) for r in ResultsFile(output).records() if retryable(r))
    else:
        outside = Counter({code: n for code, n in stats.failed_rows.items() if code not in ROW_FAILURES})
    if not outside:
        return None
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(outside.items()))
    return (
        f"note: {sum(outside.values())} rows in {output} failed for reasons outside the row ({codes}). "
        "A plain re-run skips them; once the cause is fixed (a model supplied, or --allow-missing-models), "
        "re-run with --retry-failed to evaluate them again."
    )


def check_device(device: str) -> str | None:
    """Why this machine cannot run models on ``device`` (torch sees no such CUDA device), or None."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if not torch.cuda.is_available():
        return f"--device {device}: torch sees no CUDA device on this machine; use --device cpu"
    if index >= torch.cuda.device_count():
        return f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def check_models(config: Any) -> str | None:
    """Without ``--allow-missing-models``, every judge's model must be here: a missing one
    would fail every row (``processing_failed``) after the whole input was read. Loads each
    judge's models once (they are loaded for the run anyway; the Ray engine's check loads
    them on the driver's CPU). Returns the message naming the models and their judges."""
    if config.evaluation.allow_missing_models:
        return None
    from pydantic import ValidationError

    from imagejury.core.pipeline import Evaluator
    from imagejury.judges.registry import JudgeRegistryError
    from imagejury.models.errors import ModelError, ModelUnavailableError

    evaluator = Evaluator(config, allow_local_paths=True)
    try:
        pools = [evaluator.pool(job_class) for job_class in ("standard", "quick")]
    except (JudgeRegistryError, ValidationError) as exc:
        return f"the judges could not be set up: {exc}"
    missing: dict[str, tuple[str, set[str]]] = {}
    broken: list[str] = []
    for pool in pools:
        for name, judge in pool.items():
            try:
                judge.warmup()
            except ModelUnavailableError as exc:
                missing.setdefault(exc.model, (str(exc), set()))[1].add(name)
            except ModelError as exc:
                broken.append(f"judge '{name}' could not load its model: {exc}")
    lines = [
        f"{text}\n  needed by the judges: {', '.join(sorted(judges))}" for _, (text, judges) in sorted(missing.items())
    ]
    if lines:
        lines.append(
            "supply the model(s), or pass --allow-missing-models to run without those judges "
            "(each row then lists them under check_summary.skipped_checks)"
        )
    return "\n".join(lines + broken) or None


__all__ = ["register", "cmd_batch"]
