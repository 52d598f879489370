"""A bounds-checked little-endian cursor over evidence bytes.

Every read either returns exactly the bytes asked for or raises
:class:`EvidenceFormatError` naming the structure, the field and the offset,
so parsers never leak ``IndexError``/``struct.error`` on hostile input.
"""

from __future__ import annotations

from ..errors import EvidenceFormatError


class Reader:
    """Sequential reads from ``data``; ``what`` prefixes every error message."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str, pos: int = 0) -> None:
        self.data = bytes(data)
        self.what = what
        self.pos = pos

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise EvidenceFormatError(
                f"{self.what}: truncated at offset {self.pos:#x}: {field} needs {n} bytes, {self.remaining} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def u64(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "little")

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


def u16(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 2], "little")


def u32(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 4], "little")


def u64(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 8], "little")
