"""What every sans-IO protocol core here returns when it has no event to give.

The connection objects (enclave/agent.py, shim/ttrpc.py) follow h11's shape:
bytes in with ``receive_data``, events out with ``next_event``, and two
sentinels instead of an event — compared with ``is``, so they are one
object each, shared by every core.
"""

from __future__ import annotations

__all__ = ["CLOSED", "NEED_DATA", "Sentinel"]


class Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = Sentinel("NEED_DATA")  # next_event: feed more bytes
CLOSED = Sentinel("CLOSED")  # next_event: the peer closed, between frames
