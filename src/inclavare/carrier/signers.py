"""Who signs the enclaves a carrier builds on this node.

* ``[signature] server_address`` set: the tenant's signing server
  (``inclavare signing-server``), over TLS verified against ``ca_cert``,
  with the bearer token in ``token_file`` and/or the client certificate
  ``client_cert``/``client_key``; with ``expected_signer``, a server whose
  key has another MRSIGNER is refused before anything is sent.
* otherwise the node's own Ed25519 key, created once at ``node_key``
  (default /var/lib/inclavare/carrier-signing-key.pem, 0600): the original
  shim's "mock signing", which made a throwaway key per enclave. Anyone with
  root on the node can sign as this key, so every use is logged as a
  warning saying so; relying parties should pin a signing server's key.

The token file must not be readable by group or others (it is a secret),
and it is read at each Create: rotating it needs no restart.
"""

from __future__ import annotations

import logging
import os
import stat

from ..enclave.identity.signing import KeySigner, Signer
from ..enclave.identity.signing_server import ServerSigner
from .config import CarrierConfig
from .errors import CarrierConfigError

log = logging.getLogger("inclavare.carrier")
_MAX_TOKEN = 4096


def signer_for(config: CarrierConfig) -> tuple[Signer, str]:
    """The signer `config` names, and how to say who signed (for the log line)."""
    where = config.path or "(defaults)"
    if not config.server_address:
        log.warning(
            "no [signature] server_address in %s: MOCK SIGNING with this node's own key %s "
            "(anyone with root on this node can sign as it; name a signing server for enclaves others trust)",
            where, config.node_key,
        )  # fmt: skip
        return KeySigner.load_or_create(config.node_key), f"the node key {config.node_key} (mock signing)"
    token = read_token(config.token_file, config.path) if config.token_file else None
    signer = ServerSigner(
        config.server_address,
        config.expected_signer,
        cafile=config.ca_cert or None,
        token=token,
        client_cert=config.client_cert or None,
        client_key=config.client_key or None,
    )
    return signer, f"the signing server {config.server_address}"


def read_token(path: str, config_path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise CarrierConfigError(config_path, "signature.token_file", f"{path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CarrierConfigError(config_path, "signature.token_file", f"{path}: not a regular file")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise CarrierConfigError(config_path, "signature.token_file", f"{path}: mode {mode:04o}; it must be 0600")
        data = os.read(fd, _MAX_TOKEN + 1)
    finally:
        os.close(fd)
    token = data.decode("utf-8", "replace").strip()
    if not token or len(data) > _MAX_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise CarrierConfigError(config_path, "signature.token_file", f"{path}: not one printable token")
    return token
