"""The service's HTTP errors: ``ApiError`` (a 4xx with a JSON ``detail``) and the exception
handlers that give every error the same body, ``{"detail": str, "errors": [...]?}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from imagejury.errors import InvalidRequestError

log = logging.getLogger(__name__)


class ApiError(InvalidRequestError):
    """A client error answered with its HTTP status (4xx) and a JSON ``detail``."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail, errors)
        self.status, self.headers = status, headers
        self.errors = errors  # type: ignore[assignment]  # None: no "errors" key in the body


def error_response(status: int, detail: str, errors: list | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.errors, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors)
    return error_response(422, detail or "invalid request", errors)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal error (logged on the server)")


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"detail": ...}``; an unexpected one is logged, never shown."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
