"""Reading request bodies: capped in size, strict JSON, and the idempotency fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from fastapi import Request

from imagejury.service.api_errors import ApiError


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of the range of a JSON number this API accepts")
    return value


def strict_json_loads(body: bytes | str) -> Any:
    """JSON as RFC 8259 has it: ``NaN``, ``Infinity`` and numbers that overflow to them are
    refused (Python's json accepts them, and they would come back out as invalid JSON)."""
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)


def parse_json_body(body: bytes) -> Any:
    """The body as JSON that can be stored and served back, or a 422 that says what is wrong."""
    try:
        data = strict_json_loads(body)
    except RecursionError:
        raise ApiError(422, "body: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, a 5,000-digit integer
        raise ApiError(422, f"body: not valid JSON ({exc})") from None
    problem = storable_json_problem(data)
    if problem:
        raise ApiError(422, problem)
    return data


#: deepest nesting of a body (the request itself is 3 deep; attributes may nest a little):
#: past ~200 levels pydantic and json cannot write the evaluation back out
MAX_JSON_DEPTH = 32


def storable_json_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why parsed JSON cannot be stored as UTF-8 and served back, or None.

    Json accepts ``"\\udfff"`` (a lone surrogate, which no UTF-8 encoder writes) and any
    depth its recursion allows; either would be admitted and then fail on every read.
    Walked without recursion, so a deep body cannot overflow this check itself."""
    stack: list[tuple[Any, str, int]] = [(data, "body", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > max_depth:
            return f"{path}: nested deeper than {max_depth} levels"
        if isinstance(value, dict):
            for k, v in value.items():
                if _not_utf8(k):
                    return f"{path}: a key holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode text"
                stack.append((v, f"{path}.{k}" if path != "body" else k, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, str) and _not_utf8(value):
            return f"{path}: holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode text"
    return None


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes — never buffered past it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body: larger than the limit of {limit:,} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, f"body: larger than the limit of {limit:,} bytes")
    return bytes(buf)


def canonical_json(data: Any) -> str:
    """One text per JSON value, in the spirit of RFC 8785 (JCS): keys sorted, no spaces,
    strings as UTF-8 (``"\\u00e9"`` and ``"é"`` are one string), numbers by value
    (``1``, ``1.0`` and ``1e0`` are one number; ``-0`` is ``0``)."""
    return json.dumps(_numbers_by_value(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _numbers_by_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_by_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_by_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def body_hash(data: Any) -> str:
    """The idempotency fingerprint of a parsed body: the SHA-256 of its canonical JSON, so
    the same request re-serialised (other spacing, key order, escapes, ``1.0`` for ``1``)
    replays instead of being refused as a different body."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
