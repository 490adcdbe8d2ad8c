"""Batch inputs: JSONL, CSV and Parquet manifests, or a directory of images — one row at a time.

Every reader is a generator, so memory stays flat however many rows a manifest has.
A row is the body of an evaluation request (``generated_image_url``, ``task_type``,
``generation_prompt``, ...); local image paths are read relative to the manifest's
folder (a directory input: relative to that directory).

Formats:

- **JSONL** (``.jsonl``, ``.ndjson``): one JSON request object per line; blank lines are
  skipped. A line that is not a JSON object becomes a row with ``error`` set (the batch
  writes it as a rejected record and goes on).
- **CSV** (``.csv``, ``.tsv``): a header row of request field names. Empty cells are absent
  fields. ``input_attributes`` and ``reference_images`` may hold JSON. Besides those,
  ``attr_KEY`` columns add ``input_attributes[KEY]`` (numbers and booleans parsed) and
  ``ref_KIND`` columns add reference images of that kind (``ref_identity``,
  ``ref_garment``); one cell may hold several paths separated by ``|``.
- **Parquet** (``.parquet``, needs ``pyarrow``): the same columns as CSV; nested columns
  (structs, lists) are taken as they are.
- **A directory**: every ``.jpg/.jpeg/.png/.webp`` below it, in sorted order, each with
  the shared prompt, task type, rubric and job class given on the command line; the
  row's ``client_ref`` is the file's path relative to the directory.

Row ids: a row's id is its ``client_ref`` when it has one, else ``h-`` + the first 24 hex
digits of the SHA-256 of the row as read (canonical JSON: sorted keys, no spaces), so
re-reading the same manifest gives the same ids — the key for resuming. Defaults from
the command line (``--task-type``, ``--job-class``) do not change a row's id.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagejury.errors import InvalidRequestError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
# image files a directory may hold that are not graded (media.py refuses these formats by name)
UNSUPPORTED_IMAGE_SUFFIXES = frozenset({".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".ico"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
#: CSV/Parquet columns that may carry JSON text
JSON_COLUMNS = ("input_attributes", "reference_images")
ATTR_PREFIX = "attr_"
REF_PREFIX = "ref_"
REF_SEPARATOR = "|"
#: the API's client_ref limit (SPEC.md): longer relative paths get a hash id instead
CLIENT_REF_MAX = 255
#: deepest nesting a row may have (the row object is level 1; a flat attribute is level 2).
#: Far above any real request, far below what the parser, pydantic and the writer take.
MAX_NESTING = 64


class ManifestError(InvalidRequestError):
    """The input as a whole cannot be used (missing file, unknown format, no header)."""


@dataclass
class ManifestRow:
    """One input row: request fields, or why the row could not be read."""

    row_id: str
    index: int  # 0-based position among the rows read
    data: dict[str, Any] | None = None  # the request fields (not validated yet)
    error: str | None = None  # the row could not be read at all (bad JSON, not an object)
    line: int | None = None  # 1-based line in the file, where there is one (messages only)
    base_dir: Path | None = None  # anchor for relative local paths
    extra: dict[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_id(payload: str) -> str:
    return "h-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def row_id_for(data: dict[str, Any] | None, raw: str | None = None) -> str:
    """``client_ref`` when it is a non-empty string, else a hash of the row as read."""
    if isinstance(data, dict):
        ref = data.get("client_ref")
        if isinstance(ref, str) and ref.strip():
            return ref
        return hash_id(canonical_json(data))
    return hash_id(raw if raw is not None else "")


def apply_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Fill fields a row lacks (or leaves empty) from the command-line defaults."""
    out = dict(data)
    for key, value in defaults.items():
        if value is not None and out.get(key) in (None, ""):
            out[key] = value
    return out


# ---------------------------------------------------------------- what a row may hold
def unwritable_reason(value: Any, max_depth: int = MAX_NESTING) -> str | None:
    """Why ``value`` could not be carried through to a results line, or None when it can.

    A row is refused when it reads: whatever passes here is written by ``json.dumps``
    (``allow_nan=False``, UTF-8) without fail. Checked without recursion, so a row
    nested a million deep is answered, not a ``RecursionError``: nesting deeper than
    ``max_depth``, a lone surrogate (``"\\udfff"``: not encodable as UTF-8) in a string or
    key, a number JSON has no text for (NaN, Infinity).
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > max_depth:
                return f"{where or 'the row'} is nested more than {max_depth} levels deep"
            if isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str) and not _encodable(key):
                        return f"a key in {where or 'the row'} has a lone surrogate (not valid Unicode text)"
                    stack.append((sub, depth + 1, f"{where}.{key}" if where else str(key)))
            else:
                stack.extend((sub, depth + 1, f"{where}[{n}]") for n, sub in enumerate(item))
        elif isinstance(item, str) and not _encodable(item):
            return f"{where or 'a value'} has a lone surrogate (not valid Unicode text)"
        elif isinstance(item, float) and not math.isfinite(item):
            spelt = "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
            return f"{where or 'a value'} is {spelt}, which is not a JSON number"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _non_json_constant(name: str) -> float:
    """``json.loads`` hook: NaN and Infinity are not JSON; kept as floats so the check names them."""
    return float(name)


def _load_json(text: str) -> tuple[Any, str | None]:
    """Parse JSON text; every parser failure is an answer, never an exception.

    Besides malformed text: an integer of more than 4,300 digits (``ValueError``) and
    arrays or objects nested deeper than the interpreter's stack (``RecursionError``)."""
    try:
        return json.loads(text, parse_constant=_non_json_constant), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, f"not valid JSON (nested too deeply; at most {MAX_NESTING} levels)"
    except ValueError as exc:  # int too long for int(str): "Exceeds the limit (4300 digits) ..."
        return None, f"not valid JSON ({exc})"


# ---------------------------------------------------------------- JSONL
def jsonl_row(text: str, index: int, line: int | None, base: Path | None) -> ManifestRow:
    """One JSONL line (already stripped, not blank) as a row; shared with the Ray engine.

    Never raises: a line that does not parse, is not an object, or holds what could not
    be written back out (see ``unwritable_reason``) is a row with ``error`` set."""
    data, problem = _load_json(text)
    if problem is None and isinstance(data, dict):
        problem = unwritable_reason(data)
    if problem is not None:
        return ManifestRow(row_id=row_id_for(None, text), index=index, line=line, base_dir=base, error=problem)
    if not isinstance(data, dict):
        return ManifestRow(
            row_id=row_id_for(None, text),
            index=index,
            line=line,
            base_dir=base,
            error=f"expected a JSON object (a request), got {type(data).__name__}",
        )
    return ManifestRow(row_id=row_id_for(data), index=index, line=line, base_dir=base, data=data)


def read_jsonl(path: Path) -> Iterator[ManifestRow]:
    base = path.parent
    index = 0
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        for lineno, raw in enumerate(fh, 1):
            text = raw.strip()
            if not text:
                continue
            yield jsonl_row(text, index, lineno, base)
            index += 1


# ---------------------------------------------------------------- CSV / Parquet rows
def parse_scalar(text: str) -> Any:
    """An attribute value given as text (a CSV cell, ``--attr KEY=VALUE``): ``3`` → 3,
    ``true`` → True, everything else kept as text — ``NaN``, ``Infinity`` and ``1e400``
    too: the API's JSON has no such numbers."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # malformed, or an integer of more than 4,300 digits
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value if isinstance(value, (int, float, bool)) else text


def table_row_to_request(cells: dict[str, Any]) -> dict[str, Any]:
    """Turn one CSV/Parquet row into request fields (see the module docstring).

    Raises ``ValueError`` with the column named when a JSON cell does not parse.
    """
    data: dict[str, Any] = {}
    refs: list[dict[str, Any]] = []
    attrs: dict[str, Any] = {}
    for key, value in cells.items():
        if key is None:
            raise ValueError("the row has more cells than the header has columns")
        key = key.strip()
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if isinstance(value, float) and math.isnan(value):  # a missing value in a pandas-written float column
            continue
        if key.startswith(ATTR_PREFIX) and len(key) > len(ATTR_PREFIX):
            attrs[key[len(ATTR_PREFIX) :]] = parse_scalar(value) if isinstance(value, str) else value
        elif key.startswith(REF_PREFIX) and len(key) > len(REF_PREFIX):
            kind = key[len(REF_PREFIX) :]
            urls = value.split(REF_SEPARATOR) if isinstance(value, str) else list(value)
            refs += [{"url": u.strip(), "kind": kind} for u in urls if str(u).strip()]
        elif key in JSON_COLUMNS and isinstance(value, str):
            parsed, problem = _load_json(value)
            if problem is not None:
                raise ValueError(f"column '{key}' is {problem}")
            data[key] = parsed
        else:
            data[key] = value
    if attrs:
        given = data.get("input_attributes")
        data["input_attributes"] = {**(given if isinstance(given, dict) else {}), **attrs}
    if refs:
        existing = data.get("reference_images")
        data["reference_images"] = (list(existing) if isinstance(existing, list) else []) + refs
    return data


def table_row(cells: dict[str, Any], index: int, line: int | None, base: Path | None) -> ManifestRow:
    """One CSV/Parquet row as a row; never raises (see ``jsonl_row``)."""
    try:
        data = table_row_to_request(cells)
        problem = unwritable_reason(data)
        if problem is not None:
            raise ValueError(problem)
    except ValueError as exc:
        # str keys: csv puts a row's surplus cells under the key None, which sort_keys cannot order
        text = canonical_json({str(k): v for k, v in cells.items()})
        return ManifestRow(row_id=row_id_for(None, text), index=index, line=line, base_dir=base, error=str(exc))
    return ManifestRow(row_id=row_id_for(data), index=index, line=line, base_dir=base, data=data)


def read_csv(path: Path) -> Iterator[ManifestRow]:
    base = path.parent
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        # strict: a quote that is never closed is an error, not a cell that silently
        # swallows every following line (quoted cells may still hold line breaks)
        reader = csv.DictReader(fh, delimiter=delimiter, strict=True)
        try:
            header = reader.fieldnames
        except csv.Error as exc:
            raise ManifestError(f"{path}: the header row cannot be read ({exc})") from None
        if not header:
            raise ManifestError(f"{path}: the CSV has no header row (request field names)")
        index = 0
        while True:
            first = reader.reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _csv_error_row(path, exc, first, reader.reader.line_num, index, base)
                index += 1
                continue
            if not any((v or "").strip() for k, v in cells.items() if k is not None and isinstance(v, str)):
                continue
            yield table_row(cells, index, first, base)
            index += 1


def _csv_error_row(path: Path, exc: csv.Error, first: int, last: int, index: int, base: Path) -> ManifestRow:
    """The lines a broken quote ran over, as one rejected row that names them."""
    span = f"line {first}" if last <= first else f"lines {first}-{last}"
    detail = (
        f"{span} cannot be read as CSV ({exc}): most likely a quote that is never closed, which runs "
        f"over the following lines; the rows on {span} are not evaluated — fix the quoting and run again"
    )
    return ManifestRow(
        row_id=hash_id(f"{path.name}:{first}:{last}"), index=index, line=first, base_dir=base, error=detail
    )


def read_parquet(path: Path, batch_rows: int = 1024) -> Iterator[ManifestRow]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ManifestError("reading Parquet needs pyarrow: pip install 'imagejury[parquet]'") from exc
    base = path.parent
    index = 0
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows):
        for cells in batch.to_pylist():
            yield table_row(cells, index, None, base)
            index += 1


# ---------------------------------------------------------------- directory
def iter_image_files(root: Path, *, warn: bool = True) -> Iterator[Path]:
    """Image files below ``root`` in a stable (sorted, depth-first) order, one directory at a time.

    ``warn``: log the images skipped for their format (off for the row count's scan)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            continue
        subdirs = []
        unsupported: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                if _is_regular(entry):
                    yield Path(entry.path)
                elif warn:  # a named pipe or device would block whoever opens it
                    log.warning("%s is not a regular file (a pipe, socket or device); skipped", entry.path)
            elif Path(entry.name).suffix.lower() in UNSUPPORTED_IMAGE_SUFFIXES:
                unsupported.append(entry.name)
        if unsupported and warn:  # images in a format the evaluator refuses: said, not silently dropped
            log.warning(
                "%s: skipped %d image(s) in a format other than JPEG/PNG/WebP: %s",
                folder,
                len(unsupported),
                ", ".join(unsupported[:5]) + (", ..." if len(unsupported) > 5 else ""),
            )
        stack.extend(reversed(subdirs))


def _is_regular(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file(follow_symlinks=True)
    except OSError:
        return False


def read_directory(root: Path, shared: dict[str, Any]) -> Iterator[ManifestRow]:
    """One request per image file, all with the ``shared`` fields (prompt, task type, ...)."""
    for index, file in enumerate(iter_image_files(root)):
        rel = file.relative_to(root).as_posix()
        if not _encodable(rel):  # a name that is not UTF-8 (os gives it lone surrogates)
            shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield ManifestRow(
                row_id=hash_id(os.fsencode(rel).hex()),
                index=index,
                base_dir=root,
                error=f"the file name {shown!r} is not valid UTF-8; rename the file to grade it",
            )
            continue
        data = {k: v for k, v in shared.items() if v is not None}
        data["generated_image_url"] = rel
        if len(rel) <= CLIENT_REF_MAX:
            data.setdefault("client_ref", rel)
        yield ManifestRow(row_id=row_id_for(data), index=index, base_dir=root, data=data)


# ---------------------------------------------------------------- entry point
@dataclass
class Manifest:
    """An opened batch input: what it is and how to read its rows."""

    path: Path
    kind: str  # "jsonl" | "csv" | "parquet" | "directory"
    shared: dict[str, Any] = field(default_factory=dict)  # directory: fields every row gets

    @property
    def base_dir(self) -> Path:
        return self.path if self.kind == "directory" else self.path.parent

    def rows(self) -> Iterator[ManifestRow]:
        if self.kind == "jsonl":
            return read_jsonl(self.path)
        if self.kind == "csv":
            return read_csv(self.path)
        if self.kind == "parquet":
            return read_parquet(self.path)
        return read_directory(self.path, self.shared)

    def count_rows(self) -> int | None:
        """How many rows (for progress and ETA); cheap scans only, None when unknown."""
        try:
            if self.kind == "jsonl":
                return _count_nonblank_lines(self.path)
            if self.kind == "csv":
                return max(0, _count_nonblank_lines(self.path) - 1)
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                return int(pq.ParquetFile(self.path).metadata.num_rows)
            return sum(1 for _ in iter_image_files(self.path, warn=False))
        except Exception:  # noqa: BLE001 - a count is only a hint
            log.debug("could not count rows of %s", self.path, exc_info=True)
            return None


def _count_nonblank_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                n += 1
    return n


def detect_kind(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in ("jsonl", "csv", "parquet", "directory"):
            raise ManifestError(f"unknown input format '{fmt}' (jsonl, csv, parquet, directory)")
        return fmt
    if path.is_dir():
        return "directory"
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise ManifestError(
        f"{path}: cannot tell the format from the suffix '{suffix}'; use .jsonl, .csv, .parquet or a directory "
        "(or pass --format)"
    )


def open_manifest(path: str | Path, *, shared: dict[str, Any] | None = None, fmt: str | None = None) -> Manifest:
    """Open a manifest file or an image directory; raises ``ManifestError`` when unusable."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ManifestError(f"input not found: {p}")
    kind = detect_kind(p, fmt)
    if kind == "directory":
        if not p.is_dir():
            raise ManifestError(f"{p} is not a directory")
        shared = dict(shared or {})
        if not shared.get("task_type"):
            raise ManifestError("a directory input needs a task type (--task-type)")
        return Manifest(path=p.resolve(), kind=kind, shared=shared)
    if not p.is_file():
        raise ManifestError(f"{p} is not a file")
    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ManifestError("reading Parquet needs pyarrow: pip install 'imagejury[parquet]'") from exc
    return Manifest(path=p.resolve(), kind=kind)


__all__ = [
    "Manifest",
    "ManifestError",
    "ManifestRow",
    "apply_defaults",
    "canonical_json",
    "detect_kind",
    "hash_id",
    "iter_image_files",
    "jsonl_row",
    "table_row",
    "open_manifest",
    "read_csv",
    "read_directory",
    "read_jsonl",
    "read_parquet",
    "row_id_for",
    "table_row_to_request",
    "unwritable_reason",
]
