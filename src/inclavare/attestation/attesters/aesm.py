"""A client for the SGX quoting service, aesmd, over its Unix socket (no protobuf library).

Framing (docs/ratls.md, "SGX"; rune's ``libenclave/intelsgx/aesmd.go``; Gramine ``sgx_platform.c``): each request is
a fresh ``AF_UNIX`` stream connection to ``/var/run/aesmd/aesm.socket``
carrying a 4-byte little-endian length and a protobuf
``aesm.message.Request``; the answer is a 4-byte length and a
``aesm.message.Response``. Only the few proto2 fields we need are
hand-encoded here; field numbers are those of Intel's ``messages.proto``
(linux-sgx ``psw/ae/aesm_service/source/core/ipc/messages.proto``)::

    Request  { InitQuoteExRequest initQuoteExReq = 15;   // att_key_id 1, b_pub_key_id 3, buf_size 4, timeout 9
               GetQuoteSizeExRequest getQuoteSizeExReq = 16;  // att_key_id 1, timeout 9
               GetQuoteExRequest getQuoteExReq = 17; }   // report 1, att_key_id 2, buf_size 4, timeout 9
    Response { InitQuoteExResponse initQuoteExRes = 15;  // errorCode 1, target_info 2
               GetQuoteSizeExResponse getQuoteSizeExRes = 16; // errorCode 1, quote_size 2
               GetQuoteExResponse getQuoteExRes = 17; }  // errorCode 1, quote 2

The attestation key is Intel's ECDSA-P256 quoting enclave (QE3), as in
Gramine: an ``sgx_ql_att_key_id_t`` (sgx_quote_3.h) zero-padded to the
256-byte ``sgx_att_key_id_t``. Protobuf wire format: varint (type 0) and
length-delimited (type 2) fields, https://protobuf.dev/programming-guides/encoding/.
"""

from __future__ import annotations

import errno
import socket
import struct

from ..errors import AttesterError, NotSupportedOnPlatform
from .interface import DEFAULT_AESM_SOCKET

INIT_QUOTE_EX, GET_QUOTE_SIZE_EX, GET_QUOTE_EX = 15, 16, 17
TIMEOUT_MS = 15000  # what rune sends (libenclave/intelsgx/aesmd.go)
TARGET_INFO_SIZE = 512  # sizeof(sgx_target_info_t)
REPORT_SIZE = 432  # sizeof(sgx_report_t)
MAX_MESSAGE = 1 << 20
QE3_MRSIGNER = bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff")
SGX_QL_ALG_ECDSA_P256 = 2
# sgx_ql_att_key_id_t: id u16, version u16, mrsigner_length u16, mrsigner[48], prod_id u32,
# extended_prod_id[16], config_id[64], family_id[16], algorithm_id u32 (packed, 158 bytes)
ECDSA_P256_KEY_ID = struct.pack(
    "<HHH48sI16s64s16sI", 0, 0, 32, QE3_MRSIGNER, 1, bytes(16), bytes(64), bytes(16), SGX_QL_ALG_ECDSA_P256
).ljust(256, b"\0")
WHAT = "sgx attester: aesmd"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def decode(message: bytes) -> dict[int, list[int | bytes]]:
    """Fields of one protobuf message: number -> values (varints as int, length-delimited as bytes)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0

    def take_varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            if pos >= len(message) or shift > 63:
                raise AttesterError(f"{WHAT}: malformed response (bad varint)")
            byte = message[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(message):
        key = take_varint()
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value = take_varint()
        elif wire in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire) or take_varint()
            if pos + size > len(message):
                raise AttesterError(f"{WHAT}: malformed response (field {number} runs past the end)")
            value, pos = message[pos : pos + size], pos + size
        else:
            raise AttesterError(f"{WHAT}: malformed response (wire type {wire})")
        fields.setdefault(number, []).append(value)
    return fields


class AesmClient:
    """The three aesmd calls a DCAP quote needs; one connection per call."""

    def __init__(self, path: str = DEFAULT_AESM_SOCKET, *, timeout: float = TIMEOUT_MS / 1000) -> None:
        self.path = path
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AesmClient({self.path!r})"

    def qe_target_info(self) -> bytes:
        """TARGETINFO of the quoting enclave (InitQuoteEx, as Gramine asks for it)."""
        request = field_bytes(1, ECDSA_P256_KEY_ID) + field_varint(3, 1) + field_varint(4, 32)
        reply = self._call(INIT_QUOTE_EX, "InitQuoteEx", request)
        target_info = _bytes(reply, 2, "InitQuoteEx target_info")
        if len(target_info) != TARGET_INFO_SIZE:
            raise AttesterError(f"{WHAT}: InitQuoteEx: target info is {len(target_info)} bytes, not {TARGET_INFO_SIZE}")
        return target_info

    def quote_size(self) -> int:
        reply = self._call(GET_QUOTE_SIZE_EX, "GetQuoteSizeEx", field_bytes(1, ECDSA_P256_KEY_ID))
        size = reply.get(2, [None])[0]
        if not isinstance(size, int) or not 0 < size <= MAX_MESSAGE:
            raise AttesterError(f"{WHAT}: GetQuoteSizeEx: no usable quote size")
        return size

    def get_quote(self, report: bytes) -> bytes:
        """The quote for an SGX REPORT (432 bytes) targeted at the QE, trimmed to its real size."""
        if len(report) != REPORT_SIZE:
            raise AttesterError(f"{WHAT}: GetQuoteEx: a REPORT is {REPORT_SIZE} bytes, not {len(report)}")
        request = field_bytes(1, report) + field_bytes(2, ECDSA_P256_KEY_ID) + field_varint(4, self.quote_size())
        quote = _bytes(self._call(GET_QUOTE_EX, "GetQuoteEx", request), 2, "GetQuoteEx quote")
        # The QE returns buf_size bytes; the quote is the 436-byte sgx_quote_t plus signature_data_len.
        if len(quote) < 436:
            raise AttesterError(f"{WHAT}: GetQuoteEx: {len(quote)} bytes is shorter than a quote")
        size = 436 + int.from_bytes(quote[432:436], "little")
        if size > len(quote):
            raise AttesterError(f"{WHAT}: GetQuoteEx: quote declares {size} bytes but {len(quote)} arrived")
        return quote[:size]

    def _call(self, number: int, name: str, body: bytes) -> dict[int, list[int | bytes]]:
        request = field_bytes(number, body + field_varint(9, TIMEOUT_MS))
        answer = decode(self._transact(request, name))
        inner = answer.get(number, [None])[0]
        if not isinstance(inner, bytes):
            raise AttesterError(f"{WHAT}: {name}: the response does not answer this request")
        fields = decode(inner)
        code = fields.get(1, [1])[0]  # errorCode is required, [default = 1]
        if code != 0:
            shown = f"0x{code:x}" if isinstance(code, int) else "?"
            raise AttesterError(f"{WHAT}: {name} failed with aesm_error_t {shown}")
        return fields

    def _transact(self, request: bytes, name: str) -> bytes:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
                state = "no aesmd socket" if exc.errno != errno.ECONNREFUSED else "aesmd is not listening"
                raise NotSupportedOnPlatform("sgx", f"{state} at {self.path}") from None
            sock.sendall(struct.pack("<I", len(request)) + request)
            (size,) = struct.unpack("<I", _recv_exact(sock, 4, name))
            if size > MAX_MESSAGE:
                raise AttesterError(f"{WHAT}: {name}: response of {size} bytes is too large")
            return _recv_exact(sock, size, name)
        except TimeoutError:
            raise AttesterError(f"{WHAT}: {name}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise AttesterError(f"{WHAT}: {name}: {exc.strerror or exc}") from None
        finally:
            sock.close()


def _recv_exact(sock: socket.socket, size: int, name: str) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise AttesterError(f"{WHAT}: {name}: connection closed after {size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _bytes(fields: dict[int, list[int | bytes]], number: int, what: str) -> bytes:
    value = fields.get(number, [None])[0]
    if not isinstance(value, bytes):
        raise AttesterError(f"{WHAT}: {what} is missing from the response")
    return value
