"""Calling key providers the way ocicrypt does: the config file and ``cmd`` providers.

Ref: ocicrypt config/keyprovider-config/config.go: the file named by
``OCICRYPT_KEYPROVIDER_CONFIG`` is ``{"key-providers": {"<name>": {"cmd":
{"path": ..., "args": [...]}} | {"grpc": "host:port"} | ...}}``; ocicrypt
utils.Runner.Exec runs ``path args...`` with the protocol input on stdin and
reads the output from stdout, failing on a non-zero exit. gRPC providers
(``KeyProviderService``) are not supported here: grpc is not a dependency.

``--encryption-key`` / ``--decryption-key`` values follow skopeo's spelling:
``provider:<name>[:<params>]`` (ocicrypt puts ``<params>``, or ``Enabled``
when absent, into ``Parameters[<name>]``) and ``jwe:<public key PEM file>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass

from . import mediatypes as mt
from .errors import DecryptionError, ImageError, KeyProviderError
from .layercrypt import PrivateOptions
from .layout import Descriptor
from .protocol import encode_unwrap_input, encode_wrap_input, parse_unwrap_output, parse_wrap_output

ENV = "OCICRYPT_KEYPROVIDER_CONFIG"
TIMEOUT = 120.0  # the provider may attest and talk to a broker


@dataclass(frozen=True)
class ProviderCommand:
    """One ``cmd`` key provider from the ocicrypt config."""

    name: str
    path: str
    args: tuple[str, ...] = ()

    def call(self, data: bytes) -> bytes:
        try:
            proc = subprocess.run(
                [self.path, *self.args], input=data, capture_output=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeyProviderError(
                f"key provider {self.name}", "cmd.path", f"cannot run {self.path!r} ({exc})"
            ) from None
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            why = lines[-1][:300] if lines else "no message"
            raise KeyProviderError(f"key provider {self.name}", "", f"exited {proc.returncode}: {why}")
        return proc.stdout


def load_config(path: str | None = None) -> dict[str, ProviderCommand]:
    """The ``cmd`` providers of an ocicrypt key provider config (default: ``$OCICRYPT_KEYPROVIDER_CONFIG``)."""
    path = path or os.environ.get(ENV)
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except OSError as exc:
        raise KeyProviderError(path, "", f"cannot read the key provider config ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError):
        raise KeyProviderError(path, "", "is not valid JSON") from None
    providers = doc.get("key-providers") if isinstance(doc, dict) else None
    if not isinstance(providers, dict):
        raise KeyProviderError(path, "key-providers", "must be an object of provider names")
    out: dict[str, ProviderCommand] = {}
    for name, attrs in providers.items():
        cmd = attrs.get("cmd") if isinstance(attrs, dict) else None
        if cmd is None:
            continue  # grpc/ttrpc/native providers: not reachable from here (see module notes)
        if not isinstance(cmd, dict) or not isinstance(cmd.get("path"), str):
            raise KeyProviderError(path, f"key-providers.{name}.cmd.path", "must be a string")
        args = cmd.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise KeyProviderError(path, f"key-providers.{name}.cmd.args", "must be an array of strings")
        out[name] = ProviderCommand(name, cmd["path"], tuple(args))
    return out


def parse_key_options(values: list[str]) -> tuple[dict[str, list[bytes]], list[str]]:
    """``provider:<name>[:<params>]`` -> Parameters; ``jwe:<file>`` -> public key files."""
    params: dict[str, list[bytes]] = {}
    jwe: list[str] = []
    for value in values:
        scheme, _, rest = value.partition(":")
        if scheme == "provider" and rest:
            name, sep, arg = rest.partition(":")
            params.setdefault(name, []).append(arg.encode() if sep else b"Enabled")
        elif scheme == "jwe" and rest:
            jwe.append(rest)
        else:
            raise KeyProviderError(
                "command line", value[:60], "expected provider:<name>[:<params>] or jwe:<public key file>"
            )
    return params, jwe


def wrap_with(provider: ProviderCommand, params: list[bytes], optsdata: bytes) -> bytes:
    """Ask a provider to wrap; returns the annotation bytes (unencoded)."""
    return parse_wrap_output(
        provider.call(encode_wrap_input({provider.name: params}, optsdata)), f"key provider {provider.name}"
    )


class Unwrapper:
    """Recovers a layer's private options through key providers only."""

    def __init__(self, providers: dict[str, ProviderCommand], parameters: dict[str, list[bytes]]) -> None:
        self.providers = providers
        self.parameters = parameters

    def private_options(self, layer: Descriptor) -> PrivateOptions:
        attempts: list[tuple[ProviderCommand, str]] = []
        for key, value in sorted(layer.annotations.items()):
            if key.startswith(mt.PROVIDER_PREFIX) and key[len(mt.PROVIDER_PREFIX) :] in self.providers:
                attempts.append((self.providers[key[len(mt.PROVIDER_PREFIX) :]], value))
        # A JWE recipient's private key may itself be a KBS resource: hand the
        # JWE to each provider the caller named with --decryption-key.
        if mt.JWE_ANNOTATION in layer.annotations:
            for name in self.parameters:
                if name in self.providers:
                    attempts.append((self.providers[name], layer.annotations[mt.JWE_ANNOTATION]))
        failures: list[str] = []
        for provider, value in attempts:
            for part in value.split(","):  # ocicrypt preUnwrapKey: comma-separated base64 packets
                try:
                    annotation = base64.b64decode(part, validate=True)
                    request = encode_unwrap_input(self.parameters, annotation)
                    out = parse_unwrap_output(provider.call(request), f"key provider {provider.name}")
                    return PrivateOptions.parse(out, f"{layer.digest}: unwrapped options")
                except binascii.Error:
                    failures.append(f"{provider.name}: annotation is not base64")
                except ImageError as exc:
                    failures.append(str(exc))
        if not attempts:
            names = ", ".join(sorted(k for k in layer.annotations if k.startswith(mt.KEYS_PREFIX))) or "none"
            raise DecryptionError(
                layer.digest, "annotations", f"no configured key provider for this layer (wrapped keys: {names})"
            )
        raise DecryptionError(
            layer.digest, "annotations", "no key provider could unwrap the layer key: " + " | ".join(failures)
        )
