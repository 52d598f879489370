"""A fake aesmd on a Unix socket: 4-byte LE length + protobuf, one request per connection.

Its protobuf reader is written independently of the code under test (a
dozen lines, wire types 0 and 2 only). It answers InitQuoteEx with a
TARGETINFO, GetQuoteSizeEx with a padded size and GetQuoteEx with a quote
whose body is the REPORT body it was given, padded to buf_size as Intel's
QE does, built on a genuine SGX quote v3 from the vectors.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[3] / "vectors"
QUOTE = (VECTORS / "sgx/dcap-qvl/sgx_quote.bin").read_bytes()  # v3, 4600 bytes
TARGET_INFO = bytes(range(256)) * 2


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def parse(buf: bytes) -> dict[int, int | bytes]:
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        if key & 7 == 0:
            out[key >> 3], pos = read_varint(buf, pos)
        else:
            assert key & 7 == 2, key
            size, pos = read_varint(buf, pos)
            out[key >> 3], pos = buf[pos : pos + size], pos + size
    return out


def vint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def message(fields: dict[int, int | bytes]) -> bytes:
    out = b""
    for number, value in fields.items():
        if isinstance(value, int):
            out += vint(number << 3) + vint(value)
        else:
            out += vint(number << 3 | 2) + vint(len(value)) + value
    return out


class FakeAesmd:
    def __init__(self, path: Path, *, error: dict[int, int] | None = None, padding: int = 300) -> None:
        self.path = str(path)
        self.error = error or {}
        self.padding = padding
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not on Linux)
        self.sock.close()
        self.thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                (size,) = struct.unpack("<I", conn.recv(4, socket.MSG_WAITALL))
                raw = conn.recv(size, socket.MSG_WAITALL)
                self.requests.append(raw)
                reply = message(self._answer(parse(raw)))
                conn.sendall(struct.pack("<I", len(reply)) + reply)

    def _answer(self, request: dict[int, int | bytes]) -> dict[int, int | bytes]:
        ((number, body),) = request.items()
        assert isinstance(body, bytes)
        fields = parse(body)
        if number in self.error:
            return {number: message({1: self.error[number]})}
        if number == 15:
            return {15: message({1: 0, 2: TARGET_INFO, 3: 32, 4: bytes(32)})}
        if number == 16:
            return {16: message({1: 0, 2: len(QUOTE) + self.padding})}
        report, size = fields[1], fields[4]
        assert isinstance(report, bytes)
        assert isinstance(size, int)
        quote = (QUOTE[:48] + report[:384] + QUOTE[432:]).ljust(size, b"\0")
        return {17: message({1: 0, 2: quote})}
