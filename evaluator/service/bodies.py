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
    """The body as JSON, or a 422 that says what is wrong with it."""
    try:
        return strict_json_loads(body)
    except RecursionError:
        raise ApiError(422, "body: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, a 5,000-digit integer
        raise ApiError(422, f"body: not valid JSON ({exc})") from None


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


def body_hash(data: Any) -> str:
    """The idempotency fingerprint of a parsed body: key order and spacing do not count."""
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()
