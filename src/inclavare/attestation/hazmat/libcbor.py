"""One CBOR item followed by libcbor's allocation slack, as rats-tls sizes its buffers.

rats-tls serialises every CBOR buffer it puts in a certificate with
libcbor's ``cbor_serialize_alloc(item, &buf, &size)`` and uses ``size`` as
the buffer's length (rats-tls ``src/core/dice.c`` since commit 6e9b684,
2023-04-10). Before libcbor 0.10 that ``size`` is the size of the
allocation, not of the item: the buffer starts at 32 bytes and doubles until
the item fits (libcbor v0.8.0 ``src/cbor/serialization.c``, the version
Debian 12 ships, and e87d571, the one rats-tls builds for SGX mode). The
bytes after the item are uninitialised heap memory. libcbor 0.10 and later
(v0.10.0 ``cbor_serialized_size``) report the exact size.

rats-tls's own reader (``cbor_load``) ignores what follows the first item.
:func:`decode_item` accepts trailing bytes only when the buffer length is
exactly the allocation libcbor would have made for the item, so arbitrary
appended data is still refused. Whether such bytes are covered by the
attestation depends on where they sit; docs/ratls.md ("libcbor slack")
gives the reasoning.
"""

from __future__ import annotations

import io

import cbor2

from ..errors import EvidenceFormatError
from .guard import contained

FIRST_ALLOCATION = 32  # libcbor cbor_serialize_alloc: bfr_size = 32, then bfr_size *= 2
MAX_BUFFER = 1 << 20


def allocation_for(size: int) -> int:
    """The buffer size libcbor before 0.10 reports for an item of ``size`` serialised bytes."""
    allocated = FIRST_ALLOCATION
    while allocated < size:
        allocated *= 2
    return allocated


def decode_item(data: bytes, what: str) -> tuple[object, int]:
    """The first CBOR item of ``data`` and how many bytes follow it (0, or libcbor's slack).

    EvidenceFormatError when the item is malformed, or when the bytes after it
    are not exactly libcbor's allocation slack.
    """
    if len(data) > MAX_BUFFER:
        raise EvidenceFormatError(f"{what}: larger than the 1 MiB limit")
    stream = io.BytesIO(bytes(data))
    try:
        with contained(what, EvidenceFormatError, "malformed CBOR"):
            value = cbor2.CBORDecoder(stream).decode()
    except MemoryError:  # a length field promising more than there is memory for
        raise EvidenceFormatError(f"{what}: malformed CBOR (a length beyond the input)") from None
    used = stream.tell()
    slack = len(data) - used
    if slack and len(data) != allocation_for(used):
        raise EvidenceFormatError(
            f"{what}: {slack} bytes after the CBOR item, and {len(data)} is not the buffer size "
            f"libcbor allocates for a {used}-byte item ({allocation_for(used)})"
        )
    return value, slack
