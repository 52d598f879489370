"""The key broker a carried enclave trusts: pinned from what the tenant controls, and measured.

An enclave that asks for KBS secrets talks only to the brokers its signed
manifest pins (``[kbs]``: enclave/identity/broker.py, enclave/provision/pin.py),
so a broker that admits its measurement admits an enclave that talks to
nobody else. The carrier writes that manifest on the node, but the node is
not who decides which broker the enclave trusts — the tenant is. So the pin
is taken from the two things the tenant controls, the pod spec and the
image, and the measurement covers it:

* ``urls``: the pod's ``ENCLAVE_KBS_URL`` / ``enclave.kbs.url`` (every
  replica, https only). A node that rewrites them makes another measurement,
  one the tenant's broker has no reference value for;
* ``cacert``: :data:`CA_FILE` in the image, the CA the broker's certificate
  must chain to, listed as a trusted file: its bytes are measured, and the
  enclave side checks them again when it reads them;
* ``pin_sha256``: :data:`PINS_FILE` in the image, if there is one: RFC 7469
  ``pin-sha256`` values (base64 of the SHA-256 of the broker's DER
  SubjectPublicKeyInfo), one a line, ``#`` starting a comment. With a CA
  too, both are checked.

An image with neither is refused when the pod asks for secrets, unless the
pod opts out with ``enclave.kbs.insecure_unpinned=true`` (development only):
then the manifest has no ``[kbs]`` and the enclave trusts the broker the
node names, which the carrier and rune log. The opt-out allows a missing pin
only; an image that carries one is pinned all the same.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import ssl

from ..enclave.config import SOURCES, Settings
from ..enclave.identity.broker import BrokerPin, normalize_url
from ..enclave.identity.manifest import Manifest, TrustedFile
from .errors import CarrierError
from .rootfs import read_if_present

log = logging.getLogger("inclavare.carrier")

CA_FILE = "/etc/inclavare/kbs-ca.pem"
PINS_FILE = "/etc/inclavare/kbs-pin-sha256"
OPT_OUT = SOURCES["kbs_insecure_unpinned"][1]
_MAX_CA = 1 << 20  # what the enclave side reads of it (enclave/runtimes/_base.py trusted_broker)
_MAX_PINS = 64 << 10


def broker_pin(settings: Settings, rootfs: str) -> BrokerPin | None:
    """The ``[kbs]`` table for a container's manifest; None when it asks for no secrets, or
    opted out and its image pins nothing (module docstring). Refusals are one line."""
    url, source = settings.found.get("kbs_url", ("", ""))
    if not url.strip():
        return None
    urls = _urls(url, source)
    unpinned = _opted_out(settings)
    ca = _has_ca(rootfs)
    pins = _pins(rootfs)
    if not ca and not pins:
        if not unpinned:
            raise CarrierError(source, f"asks for KBS secrets, but the image has no {CA_FILE} (or {PINS_FILE}) "
                               f"naming the broker the enclave may trust: add the broker's CA to the image, or "
                               f"annotate the pod {OPT_OUT}=true (development only)")  # fmt: skip
        log.warning("%s=true: the enclave pins no key broker and will attest to whichever the node names "
                    "(development only; add %s to the image)", OPT_OUT, CA_FILE)  # fmt: skip
        return None
    pin = BrokerPin(urls, CA_FILE if ca else None, pins)
    log.info("carrier: the enclave trusts the key broker(s) %s (%s from the image)", ", ".join(urls),
             " and ".join(n for n, c in ((CA_FILE, ca), (PINS_FILE, pins)) if c))  # fmt: skip
    return pin


def with_broker(manifest: Manifest, pin: BrokerPin | None) -> Manifest:
    """`manifest` pinning `pin`, its CA a trusted file (hash still to expand)."""
    if pin is None:
        return manifest
    files = manifest.trusted_files + ((TrustedFile(pin.cacert, None),) if pin.cacert else ())
    return dataclasses.replace(manifest, trusted_files=files, kbs=pin)


def _urls(value: str, source: str) -> tuple[str, ...]:
    urls = set()
    for url in (u.strip() for u in value.split(",") if u.strip()):  # the replicas, as rune reads them
        try:
            urls.add(normalize_url(url))
        except ValueError as exc:
            raise CarrierError(source, str(exc)) from None
    return tuple(sorted(urls))


def _opted_out(settings: Settings) -> bool:
    value = settings.get("kbs_insecure_unpinned", "false")
    if value not in ("true", "false"):
        raise CarrierError(settings.source("kbs_insecure_unpinned"), f"{value!r}: must be true or false")
    return value == "true"


def _has_ca(rootfs: str) -> bool:
    """Whether the image carries a CA file; one that TLS cannot use is refused now, not at launch."""
    data = read_if_present(rootfs, CA_FILE, _MAX_CA + 1, "image")
    if data is None:
        return False
    where = f"image: {CA_FILE}"
    if len(data) > _MAX_CA:
        raise CarrierError(where, "larger than 1 MiB")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:  # as the enclave side will load it (enclave/provision/pin.py client_context)
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise CarrierError(where, f"not a PEM CA bundle ({reason})") from None
    if not context.cert_store_stats()["x509_ca"]:
        raise CarrierError(where, "holds no CA certificate (basicConstraints CA:TRUE) to chain the broker's to")
    return True


def _pins(rootfs: str) -> tuple[bytes, ...]:
    data = read_if_present(rootfs, PINS_FILE, _MAX_PINS + 1, "image")
    if data is None:
        return ()
    if len(data) > _MAX_PINS:
        raise CarrierError(f"image: {PINS_FILE}", "larger than 64 KiB")
    pins = set()
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        text = line.partition("#")[0].strip()
        if not text:
            continue
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise CarrierError(f"image: {PINS_FILE}: line {number}",
                               "must be base64 of a SHA-256 digest (RFC 7469 pin-sha256)")  # fmt: skip
        pins.add(raw)
    if not pins:
        raise CarrierError(f"image: {PINS_FILE}", "holds no pin (remove the file, or add the broker's pin-sha256)")
    return tuple(sorted(pins))
