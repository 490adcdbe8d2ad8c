"""The one error tree: every error imagejury raises on purpose, with the code it ends as.

Every class derives from ``ImagejuryError`` and carries a ``failure_code``. Where an error
ends depends on the code, the same on every surface:

| code | library | CLI exit | service | batch row |
|---|---|---|---|---|
| ``invalid_request`` | raised | 2 | 4xx | failed, ``invalid_request`` |
| ``invalid_media`` | a ``failed`` evaluation | 2 | a ``failed`` evaluation | failed, ``invalid_media`` |
| ``fetch_failed`` | a ``failed`` evaluation | 3 | a ``failed`` evaluation | failed, ``fetch_failed`` (retried on resume) |
| ``processing_failed`` / ``timed_out`` / ``dispatch_failed`` | a ``failed`` evaluation | 3 | a ``failed`` evaluation | failed, same code |

This module imports nothing else of imagejury, so every layer (models and judges too)
can derive its errors from it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar


class FailureCode(str, Enum):
    """Why an evaluation did not get a verdict: the API's codes, plus ``invalid_request``.

    ``invalid_request`` never becomes an evaluation in the service (it is a 4xx answer);
    the batch engine writes it on rows that could not be read or validated.
    """

    invalid_request = "invalid_request"
    invalid_media = "invalid_media"
    # imagejury's: the image could not be fetched over the network (DNS, connection,
    # timeout, an HTTP 5xx) — the address may be fine; retrying later may work. Distinct
    # from invalid_media, which is the caller's input at fault (bad bytes, a 404, a
    # refused address).
    fetch_failed = "fetch_failed"
    dispatch_failed = "dispatch_failed"
    processing_failed = "processing_failed"
    timed_out = "timed_out"


class ImagejuryError(Exception):
    """Base of every error imagejury raises on purpose.

    ``detail`` is the complete human-readable message (it already names the field when
    one is known); ``failure_code`` is the code it ends as.
    """

    failure_code: ClassVar[FailureCode] = FailureCode.processing_failed

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    @property
    def is_bad_input(self) -> bool:
        """True when the caller's input was at fault (CLI exit 2, a 4xx), not the machine."""
        return self.failure_code in (FailureCode.invalid_request, FailureCode.invalid_media)


class InvalidRequestError(ImagejuryError):
    """The request itself is malformed: a field is missing, too long or of the wrong kind;
    a flag, config key or manifest is unusable."""

    failure_code = FailureCode.invalid_request

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        # errors: pydantic-style [{"loc": [...], "msg": ..., "type": ...}], when known
        self.errors = errors or []
        super().__init__(detail)


class ConfigError(InvalidRequestError):
    """A config file, flag or environment setting is unusable (named with its key and file)."""


class InvalidMediaError(ImagejuryError):
    """An image could not be fetched, decoded or accepted (format, size, address).

    ``reason`` is the message without the field; ``detail`` is ``"<field>: <reason>"``.
    """

    failure_code = FailureCode.invalid_media

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.reason = detail
        self.field = field
        super().__init__(f"{field}: {detail}" if field else detail)


class UnsafeURLError(InvalidMediaError):
    """A URL was refused before any connection: non-global address, bad scheme, credentials."""


class FetchFailedError(ImagejuryError):
    """The network did not deliver the image: the name did not resolve, the connection
    failed or timed out, or the server answered 5xx. Not the caller's input at fault
    (``is_bad_input`` is False), so the CLI exits 3 and a resumed batch retries the row.

    ``reason`` is the message without the field; ``detail`` is ``"<field>: <reason>"``.
    """

    failure_code = FailureCode.fetch_failed

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.reason = detail
        self.field = field
        super().__init__(f"{field}: {detail}" if field else detail)


class ProcessingError(ImagejuryError):
    """The evaluation could not be carried out (a judge or a model failed, a model is missing)."""

    failure_code = FailureCode.processing_failed


class TimedOutError(ImagejuryError):
    """The evaluation did not finish within its time budget (the service's job timeout)."""

    failure_code = FailureCode.timed_out


__all__ = [
    "ConfigError",
    "FailureCode",
    "FetchFailedError",
    "ImagejuryError",
    "InvalidMediaError",
    "InvalidRequestError",
    "ProcessingError",
    "TimedOutError",
    "UnsafeURLError",
]
