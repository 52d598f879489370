"""One socket write per response: uvicorn's httptools protocol over a transport that coalesces writes.

uvicorn writes a response's status line and headers when the application
sends ``http.response.start`` and the body when it sends
``http.response.body`` (uvicorn/protocols/http/httptools_impl.py,
``RequestResponseCycle.send``); with uvloop each write is a ``send(2)`` on
the spot, so every KBS answer left as two TCP segments, and on a loopback
or VM network each segment also wakes the reader. Measured on the bench
(bench/kbs.py, docs/kbs.md "Throughput"), those two syscalls were a
quarter of the broker's Python time.

:class:`CoalescingTransport` keeps what is written during one event-loop
step and hands it to the real transport as one write at the end of the
step (``loop.call_soon``). A starlette response sends its start and its
body without suspending in between, so they meet in one buffer; anything
else (a streamed body, ``100 Continue``, uvicorn's own error answers) just
goes out one step later, never reordered, never dropped: ``close()``
flushes first. Flow control is untouched: the real transport still tells
the protocol to pause and resume writing, and what waits here is at most
one step's output.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport proxy whose writes within one loop step leave as one ``write``."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # get_extra_info, is_closing, pause_reading, ...
        return getattr(self._transport, name)


def http_protocol() -> type[asyncio.Protocol] | str:
    """The ``http`` class for uvicorn.Config: httptools over a coalescing transport, or "auto" without httptools."""
    try:  # the `kbs` extra; without httptools, uvicorn picks its h11 protocol and nothing is coalesced
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - only on an install without the extra
        return "auto"

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        # uvicorn types the argument as asyncio.Transport (a BaseTransport in asyncio.Protocol); the
        # wrapper is a duck-typed Transport: it forwards every attribute it does not override.
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # see above
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]  # see above

    return CoalescingHttpToolsProtocol
