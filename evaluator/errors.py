"""Typed errors a user can cause, each mapped to how the API reports it.

An error with a ``failure_code`` ends as a failed evaluation carrying that code;
an error whose code is ``None`` is a bad request (422 in the server, exit code 2
in the CLI) and never becomes an evaluation at all.
"""

from __future__ import annotations


class ImagejuryError(Exception):
    """Base of every error imagejury raises on purpose.

    ``detail`` is the complete human-readable message (it already names the field
    when one is known); ``failure_code`` is the API code it ends as, or ``None``.
    """

    failure_code: str | None = None

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class InvalidRequestError(ImagejuryError):
    """The request itself is malformed: a field is missing, too long or of the wrong kind."""

    failure_code = None

    def __init__(self, detail: str, errors: list[dict] | None = None) -> None:
        # errors: pydantic-style [{"loc": [...], "msg": ..., "type": ...}], when known
        self.errors = errors or []
        super().__init__(detail)


class InvalidMediaError(ImagejuryError):
    """An image could not be fetched, decoded or accepted (format, size, address).

    ``reason`` is the message without the field; ``detail`` is ``"<field>: <reason>"``.
    """

    failure_code = "invalid_media"

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.reason = detail
        self.field = field
        super().__init__(f"{field}: {detail}" if field else detail)


class UnsafeURLError(InvalidMediaError):
    """A URL was refused before any connection: non-global address, bad scheme, credentials."""


class ProcessingError(ImagejuryError):
    """The evaluation could not be carried out (a judge or a model failed, a model is missing)."""

    failure_code = "processing_failed"


class TimedOutError(ImagejuryError):
    """The evaluation did not finish within its time budget."""

    failure_code = "timed_out"
