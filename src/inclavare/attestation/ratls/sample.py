"""The rats-tls sample protocol: what its sample server replies and what its sample client accepts.

rats-tls's samples (github.com/inclavare-containers/rats-tls 6675532, samples/):

* the client sends :data:`GREETING` (``\\033[91m...\\033[0m\\n`` since a9a8df0,
  2023-12-08; ``Hello and welcome to RATS-TLS!\\n`` before), reads one record
  into a 256-byte buffer (at most 255 bytes kept) and compares it with what it
  sent (``strcmp``); its SGX and Occlum builds first drop a 64-byte
  MRENCLAVE || MRSIGNER prefix when the reply is at least 64 bytes long
  (rats-tls-client/client.c, sgx-stub-enclave/sgx_stub_ecall.c);
* the server reads one record (at most 255 bytes kept) and replies, in its
  host and SGX builds, with the same bytes (**echo**), in its Occlum build with
  MRENCLAVE(32) || MRSIGNER(32) of a local report followed by a fixed
  greeting (**identity**; rats-tls-server/server.c).

``identity`` here puts the received message after the prefix, which every
rats-tls client accepts: upstream's fixed greeting is blue (``\\033[94m``)
and no longer matches its own Occlum client's red one since a9a8df0. The
prefix is the attester's measurement and signer: MRENCLAVE || MRSIGNER for
SGX and software enclaves; for TEEs with larger or no signer values the
signer is zero-filled to the measurement's size, a form rats-tls clients do
not know. ``json`` is inclavare's own, for scripts.
"""

from __future__ import annotations

import json

from ..hazmat.hextext import from_hex
from .context import RatlsError

GREETING = b"\033[91mHello and welcome to RATS-TLS!\033[0m\n"  # rats-tls-client/client.c, host build
MODES = ("echo", "identity", "json")
SGX_PREFIX = 64  # sizeof(sgx_measurement_t) * 2


class ReplyError(RatlsError):
    """The sample reply is not what the protocol says (rats-tls: "Invalid response")."""


def reply(mode: str, message: bytes, measurement: bytes, signer: bytes | None, tee: str) -> bytes:
    """The server's answer to ``message`` in ``mode``."""
    if mode == "echo":
        return message
    signer = signer or bytes(len(measurement))
    if mode == "identity":
        return measurement + signer + message
    doc = {"tee": tee, "measurement": measurement.hex(), "signer": signer.hex()}
    return json.dumps({**doc, "message": message.decode("utf-8", "replace")}).encode()


def check_reply(mode: str, sent: bytes, received: bytes, size: int) -> tuple[dict[str, object], bytes | None]:
    """The decoded reply and the measurement it states (None for echo); ReplyError if it does not match.

    ``size`` is the measurement size of the server's TEE (32 when unknown,
    rats-tls's SGX form).
    """
    if mode == "echo":
        if received != sent:
            raise ReplyError(f"ratls client: invalid response: not our message echoed ({_show(received)})")
        return {"message": received.decode("utf-8", "replace")}, None
    if (received[:1] == b"{") != (mode == "json"):
        raise ReplyError(f"ratls client: invalid response: not a {mode} reply ({_show(received)})")
    doc, measurement = decode_reply(received, size)
    if doc.get("message") != sent.decode("utf-8", "replace"):
        raise ReplyError(f"ratls client: invalid response: the message is not ours ({_show(received)})")
    return doc, measurement


def decode_reply(reply: bytes, size: int) -> tuple[dict[str, object], bytes]:
    """The server's reply (``identity`` or ``json``) and the measurement it states; ReplyError if neither.

    The server is verified, but its reply is still input: JSON that is not
    an object, or a measurement that is not hex (``0x`` allowed), is a
    one-line error, not a traceback.
    """
    if reply[:1] != b"{":
        if len(reply) < 2 * size:
            raise ReplyError(f"ratls client: invalid response: shorter than the {2 * size}-byte identity prefix")
        doc: dict[str, object] = {
            "measurement": reply[:size].hex(),
            "signer": reply[size : 2 * size].hex(),
            "message": reply[2 * size :].decode("utf-8", "replace"),
        }
        return doc, reply[:size]
    try:
        parsed = json.loads(reply)
        text = parsed.get("measurement", "") if isinstance(parsed, dict) else None
        if not isinstance(text, str):
            raise ValueError("no measurement string")
        return parsed, from_hex(text)
    except (ValueError, RecursionError) as exc:
        raise ReplyError(f"ratls client: the server's JSON reply is malformed ({str(exc)[:80]})") from None


def _show(data: bytes) -> str:
    return f"{len(data)} bytes: {data[:48]!r}{'...' if len(data) > 48 else ''}"
