"""Let an :class:`ssl.SSLContext` accept any certificate chain, to be checked after the handshake.

Python's :mod:`ssl` has no verification callback. A TLS *server* that wants a
client certificate must use ``CERT_OPTIONAL``/``CERT_REQUIRED``, and OpenSSL
then refuses a self-signed RA-TLS certificate (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
before the application sees it. rats-tls handles this in its verify callback,
which tolerates the self-signed pre-verify errors and verifies the evidence
instead (docs/ratls.md, "Attested TLS"). Here the same effect comes from
``SSL_CTX_set_cert_verify_callback`` (OpenSSL ``SSL_CTX_set_cert_verify_callback(3)``)
with a callback that returns 1: chain building is skipped, while the TLS
handshake itself still proves that the peer holds the certificate's private
key (TLS 1.3 CertificateVerify, RFC 8446 section 4.4.3). The caller MUST
verify the peer certificate (``getpeercert(binary_form=True)``) before
trusting the connection; :mod:`inclavare.attestation.ratls` does.

The ``SSL_CTX *`` is read from the ``_ssl._SSLContext`` object (its first
field after ``PyObject_HEAD``) and checked against what the object itself
reports (options and verify mode) before anything is written; symbols come
from the very libssl the ``_ssl`` module is linked with.
"""

from __future__ import annotations

import _ssl
import ctypes
import ssl

from ..errors import AttestationError

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}  # SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT
_lib: ctypes.CDLL | None = None


def _accept_chain(_store_ctx: int | None, _arg: int | None) -> int:
    return 1  # chain "verified": the application checks the certificate after the handshake


_ACCEPT = _CALLBACK(_accept_chain)  # module lifetime: OpenSSL keeps the pointer


def _libssl() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(_ssl.__file__)  # dlsym through _ssl's own DT_NEEDED libssl
        lib.SSL_CTX_set_cert_verify_callback.argtypes = [ctypes.c_void_p, _CALLBACK, ctypes.c_void_p]
        lib.SSL_CTX_set_cert_verify_callback.restype = None
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        _lib = lib
    return _lib


def defer_chain_verification(context: ssl.SSLContext) -> None:
    """Make ``context`` accept any peer certificate chain; the caller verifies the peer itself."""
    try:
        lib = _libssl()
    except (OSError, AttributeError) as exc:
        raise AttestationError(f"ratls: not supported on this platform: libssl of the ssl module: {exc}") from None
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if (
        not pointer
        or lib.SSL_CTX_get_options(pointer) != int(context.options)
        or lib.SSL_CTX_get_verify_mode(pointer) != _VERIFY_MODES[context.verify_mode]
    ):
        raise AttestationError("ratls: not supported on this platform: cannot reach the SSL_CTX of this Python's ssl")
    lib.SSL_CTX_set_cert_verify_callback(pointer, _ACCEPT, None)
