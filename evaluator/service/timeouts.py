"""Time limits on what a client sends: the request head (uvicorn has none) and the body.

A client that opens a connection and trickles its headers, or declares a 12 MB body and
sends a byte a minute, holds a connection and a thread for as long as it likes unless
the server stops waiting. The head is timed in the HTTP protocol (``header_timeout_protocol``:
uvicorn's h11 protocol with a timer from the first byte of a request head to its end);
the body in ASGI (``BodyTimeoutMiddleware``: from the first read of the body to its
last chunk), answered ``408`` with the usual JSON error."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from imagejury.service.api_errors import ApiError

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing (408) a connection whose request head is not
    complete ``header_timeout_s`` after it started (or after the connection opened)."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()  # part of a head has arrived: it must be complete in time
        else:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """The protocol class to give ``uvicorn.run(http=...)``."""
    return type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout_s": seconds})


class BodyTimeoutMiddleware:
    """Raise a 408 ApiError when a request body is not complete ``timeout_s`` after it is
    first read. Messages after the body (a disconnect) are passed on untimed."""

    def __init__(self, app: Any, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"deadline": None, "done": False}

        async def timed_receive() -> dict[str, Any]:
            if state["done"]:
                return await receive()
            if state["deadline"] is None:
                state["deadline"] = loop.time() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, state["deadline"] - loop.time()))
            except asyncio.TimeoutError:
                raise ApiError(408, f"body: not received within {self.timeout_s:g} s") from None
            if message.get("type") != "http.request" or not message.get("more_body", False):
                state["done"] = True
            return message

        await self.app(scope, timed_receive, send)
