"""inclavare's ocicrypt key provider: wraps layer keys under KBS keys, unwraps them after attestation.

Registered with ocicrypt as provider ``inclavare`` (annotation
``org.opencontainers.image.enc.keys.provider.inclavare``), run as a ``cmd``
provider (``inclavare-keyprovider``) or in-process by ``inclavare image``.

Wrap (owner side). ``--encryption-key provider:inclavare:<params>`` gives
``ec.Parameters["inclavare"] = [<params>]``, one of

- ``kbs:///<repository>/<type>/<tag>``: the KEK is that resource, read from the key store;
- ``keyid=kbs:///<repository>/<type>/<tag>::keypath=<file>``: CoCo coco_keyprovider's
  form; the KEK is read from the file and the packet names ``keyid``.

Unwrap (inside the TEE). The packet's ``kid`` names the KEK, which the key
store releases (for the broker-backed store: only after attestation). A JWE
annotation handed to this provider is opened with the private key resource
named by ``dc.Parameters["inclavare"]`` (``--decryption-key provider:inclavare:kbs:///...``).
"""

from __future__ import annotations

import json
import os

from .errors import ImageError, KeyProviderError
from .keystore import KeyStore, ResourcePath
from .keywrap import KeyPacket, is_jwe, jwe_unwrap, unwrap, wrap
from .protocol import UnwrapRequest, WrapRequest, encode_unwrap_output, encode_wrap_output, parse_input

NAME = "inclavare"
KEK_FILE_LIMIT = 4096


def parse_params(raw: bytes, where: str = "ec.Parameters.inclavare") -> tuple[ResourcePath, str | None]:
    """The KEK's resource path and, in CoCo's form, a local file holding the KEK."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise KeyProviderError("input", where, "must be UTF-8 text") from None
    if text.startswith("kbs://"):
        return ResourcePath.parse(text, where), None
    fields: dict[str, str] = {}
    for item in text.split("::"):
        key, eq, value = item.partition("=")
        if not eq or key not in ("keyid", "keypath") or key in fields:
            raise KeyProviderError(
                "input", where, "expected kbs:///<repo>/<type>/<tag> or keyid=<kbs uri>::keypath=<file>"
            )
        fields[key] = value
    if "keyid" not in fields:
        raise KeyProviderError("input", where, "keyid=<kbs uri> is required")
    return ResourcePath.parse(fields["keyid"], where + " keyid"), fields.get("keypath") or None


class KeyProvider:
    """The provider's logic, transport-free: request bytes in, response bytes out."""

    def __init__(self, store: KeyStore | None, name: str = NAME) -> None:
        self.store = store
        self.name = name

    def handle(self, data: bytes) -> bytes:
        request = parse_input(data)
        if isinstance(request, WrapRequest):
            return encode_wrap_output(self.wrap(request))
        return encode_unwrap_output(self.unwrap(request))

    def wrap(self, request: WrapRequest) -> bytes:
        """The annotation (packet JSON) for ``keywrapresults``."""
        where = f"keywrapparams.ec.Parameters.{self.name}"
        params = request.parameters.get(self.name) or []
        if len(params) != 1:
            raise KeyProviderError("input", where, f"exactly one KEK id is needed, {len(params)} given")
        kid, keypath = parse_params(params[0], where)
        kek = _read_kek(keypath) if keypath else self._fetch(kid)
        return wrap(request.optsdata, kid, kek).to_json()

    def unwrap(self, request: UnwrapRequest) -> bytes:
        """The private layer options for ``keyunwrapresults``."""
        try:
            doc = json.loads(request.annotation)
        except (ValueError, UnicodeDecodeError):
            raise KeyProviderError("input", "keyunwrapparams.annotation", "is not JSON") from None
        if not isinstance(doc, dict):
            raise KeyProviderError("input", "keyunwrapparams.annotation", "must be a JSON object")
        if is_jwe(doc):
            return self._unwrap_jwe(request)
        packet = KeyPacket.parse(doc, "keyunwrapparams.annotation")
        return unwrap(packet, self._fetch(packet.kid))

    def _unwrap_jwe(self, request: UnwrapRequest) -> bytes:
        where = f"keyunwrapparams.dc.Parameters.{self.name}"
        params = request.parameters.get(self.name) or []
        if not params:
            raise KeyProviderError("input", where, "a JWE recipient needs the kbs:// path of its private key")
        failures: list[str] = []
        for raw in params:
            resource, _ = parse_params(raw, where)
            try:
                return jwe_unwrap(request.annotation, self._fetch(resource), f"jwe ({resource})")
            except ImageError as exc:
                failures.append(str(exc))
        raise KeyProviderError("input", "keyunwrapparams.annotation", "no key opens this JWE: " + "; ".join(failures))

    def _fetch(self, kid: ResourcePath) -> bytes:
        if self.store is None:
            raise KeyProviderError(str(kid), "", "this provider has no key store (--keys DIR)")
        return self.store.get(kid)


def _read_kek(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyProviderError(path, "", f"cannot read the KEK file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        return f.read(KEK_FILE_LIMIT)
