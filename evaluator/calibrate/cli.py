"""``imagejury rescore`` and ``imagejury calibrate``: re-judge stored results, fit thresholds to labels.

Exit codes: 0 done; 2 the input or the options cannot be used (no such file, a bad labels
CSV, too few labels of either class for every judge).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imagejury.errors import ImagejuryError

EXIT_OK, EXIT_INVALID = 0, 2
log = logging.getLogger("imagejury.calibrate")


def register(sub: Any, add_model_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``rescore`` and ``calibrate``; neither loads a model, so neither takes the model flags."""
    r = sub.add_parser(
        "rescore",
        help="recompute votes, verdicts and actions of a results JSONL under other thresholds/weights (no model runs)",
        description="Re-judge stored results from the measurements the judges recorded, under the "
        "[judges.NAME.calibration] thresholds and [judges.NAME] weights of --config.",
    )
    r.add_argument("results", metavar="RESULTS.jsonl")
    r.add_argument("--config", required=True, help="config overlay (e.g. written by `imagejury calibrate`)")
    r.add_argument("-o", "--output", required=True, help="rescored JSONL (a new file; the input is never edited)")
    r.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that parse and rescore chunks of lines (default 1; JSON decoding is most of the time, "
        "so more help on a machine with idle cores)",
    )
    r.set_defaults(func=cmd_rescore)

    c = sub.add_parser(
        "calibrate",
        help="fit judge thresholds to people's labels; writes a config overlay with provenance",
        description="Fit, per judge with a threshold and per model, the threshold that best separates the "
        "labels, with stratified k-fold cross-validation and bootstrap intervals.",
    )
    c.add_argument("results", metavar="RESULTS.jsonl", nargs="?", help="batch results (not needed with --db)")
    c.add_argument("--labels", help="CSV with columns id (evaluation id or client_ref), passed (1/0), optional judge")
    c.add_argument("--db", help="the service's SQLite store: results and PATCH …/feedback labels (read-only)")
    c.add_argument("--org", help="with --db: only this org's evaluations")
    c.add_argument("-o", "--output", required=True, help="config overlay to write (TOML)")
    c.add_argument(
        "--max-false-accept",
        type=float,
        help="objective: best balanced accuracy among thresholds passing at most this share of fail labels",
    )
    c.add_argument("--judge", action="append", help="only this judge (repeatable)")
    c.add_argument("--folds", type=int, default=5, help="stratified cross-validation folds (default 5)")
    c.add_argument("--min-per-class", type=int, default=8, help="fewest labels of each class to fit (default 8)")
    c.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals (default 1000)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=cmd_calibrate)


def cmd_rescore(args: argparse.Namespace) -> int:
    from imagejury.calibrate.overlay import Overlay
    from imagejury.calibrate.rescore import rescore_file

    started = time.perf_counter()
    try:
        overlay = Overlay.from_file(args.config)
        stats = rescore_file(args.results, overlay, args.output, workers=args.workers)
    except ImagejuryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    seconds = time.perf_counter() - started
    print(f"rescored {stats.completed} completed of {stats.rows} rows in {seconds:.1f}s -> {args.output}")
    for judge, n in sorted(stats.rescored_judges.items()):
        fails = stats.flips[(judge, "pass->fail")]
        passes = stats.flips[(judge, "fail->pass")]
        print(f"  {judge:<22} {n:>8} votes recomputed  {passes:>6} fail->pass  {fails:>6} pass->fail")
    for judge, n in sorted(stats.unmeasured_judges.items()):
        print(f"  {judge:<22} {n:>8} votes kept: no stored measurements to recompute from")
    v = stats.verdict_flips
    print(f"  verdicts: {v['fail->pass']} fail->pass, {v['pass->fail']} pass->fail")
    for (old, new), n in stats.action_changes.most_common():
        print(f"  action {old} -> {new}: {n}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    try:
        text, table = run_calibration(args)
    except ImagejuryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    Path(args.output).write_text(text, encoding="utf-8")
    print(table)
    print(f"wrote {args.output}")
    return EXIT_OK


def run_calibration(args: argparse.Namespace) -> tuple[str, str]:
    """(the overlay's TOML, the before/after table); raises when nothing can be fitted."""
    from imagejury.calibrate.fit import FitReport, Objective, TooFewLabels, calibrate_set
    from imagejury.calibrate.labels import judge_sets, read_labels_csv, read_store
    from imagejury.calibrate.rescore import read_records
    from imagejury.errors import InvalidRequestError

    if bool(args.labels) == bool(args.db):
        raise InvalidRequestError("give either --labels CSV (with RESULTS.jsonl) or --db STORE")
    if args.labels:
        if not args.results:
            raise InvalidRequestError("--labels needs the RESULTS.jsonl the labels refer to")
        labels, records, source = read_labels_csv(args.labels), read_records(args.results), args.results
    else:
        store_records, labels = read_store(args.db, args.org)
        records, source = iter(store_records), args.db
    sets, matched = judge_sets(records, labels)
    if args.judge:
        sets = [s for s in sets if s.judge in set(args.judge)]
    if not sets:
        raise InvalidRequestError(
            f"no labelled judge vote with stored measurements: {len(labels)} labels, {matched} matched a result "
            "(labels name an evaluation id, client_ref or batch row; judges record measurements since this version)"
        )
    objective = Objective(args.max_false_accept)
    reports: list[FitReport] = []
    refused: list[str] = []
    for js in sets:
        try:
            reports.append(
                calibrate_set(
                    js,
                    objective,
                    folds=args.folds,
                    min_per_class=args.min_per_class,
                    bootstrap=args.bootstrap,
                    seed=args.seed,
                )
            )
        except TooFewLabels as exc:
            refused.append(str(exc))
    if not reports:
        raise InvalidRequestError("too few labels to calibrate anything:\n  " + "\n  ".join(refused))
    return overlay_text(reports, objective, source), before_after_table(reports, refused)


def overlay_text(reports: list[Any], objective: Any, source: str) -> str:
    from imagejury.calibrate.overlay import FittedThreshold, render_overlay

    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    fits = []
    for r in (r for r in reports if r.improves and r.after != r.before):
        for key, before, after in zip(r.keys, r.before, r.after):
            fits.append(
                FittedThreshold(
                    judge=r.judge,
                    measurement=key,
                    model=r.model,
                    value=after,
                    provenance=[
                        f"fitted {today} from {r.n_pass + r.n_fail} labels ({r.n_pass} pass / {r.n_fail} fail), "
                        f"model {r.model or 'unspecified'}, objective {objective.name}",
                        f"threshold {before:.6g} -> {after:.6g}; {r.folds}-fold CV balanced accuracy "
                        f"{r.cv_before} -> {r.cv_after} (95% bootstrap); false accepts "
                        f"{r.far_before:.3f} -> {r.far_after:.3f}",
                    ],
                )
            )
    header = [
        f"imagejury calibrate, {today}, from {source}",
        "load with --config (evaluate, batch, serve, rescore); each value's provenance is above it",
    ] + [
        f"kept {r.judge} ({r.model or 'any model'}) as it is: the fit ({', '.join(f'{a:.6g}' for a in r.after)}) "
        f"does not beat its own threshold out of fold ({r.cv_before} -> {r.cv_after})"
        for r in reports
        if not r.improves
    ]
    return render_overlay(fits, header)


def before_after_table(reports: list[Any], refused: list[str]) -> str:
    head = f"{'judge':<20} {'model':<28} {'key':<12} {'n(+/-)':>9} {'threshold':>19}  {'CV bal. acc. before':>25}  {'after (out of fold)':>25}  {'false acc.':>12}"
    lines = [head, "-" * len(head)]
    for r in reports:
        for key, before, after in zip(r.keys, r.before, r.after):
            lines.append(
                f"{r.judge:<20} {(r.model or '-')[:28]:<28} {key[:12]:<12} {f'{r.n_pass}/{r.n_fail}':>9} "
                f"{f'{before:.4g} -> {after:.4g}':>19}  {str(r.cv_before):>25}  {str(r.cv_after):>25}  "
                f"{f'{r.far_before:.2f}->{r.far_after:.2f}':>12}"
            )
    lines += [
        f"kept {r.judge} ({r.model or '-'}): the fit does not beat its own threshold out of fold"
        for r in reports
        if not r.improves
    ]
    lines += [f"not fitted: {why}" for why in refused]
    return "\n".join(lines)
