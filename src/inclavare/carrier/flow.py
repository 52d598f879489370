"""The carrier's main flow: an ordinary bundle in, a signed enclave bundle out.

containerd-shim-rune-v2 calls :func:`prepare` at Create, once the
container's root filesystem is mounted at the bundle's ``root.path`` and
before `rune create`; ``inclavare carrier prepare BUNDLE`` runs the same for
a bundle on disk. For a container that asks for a carrier
(:mod:`.registry`):

1. the entrypoint must be what the carrier runs (a wasm module, a static
   ELF: :mod:`.programs`);
2. ``signature_method = "server"`` (the default): the enclave manifest is
   generated from config.json (:mod:`.workload`), with KBS secrets asked
   for pinning the broker the pod names and the image's CA (:mod:`.broker`),
   every hash pinned from the rootfs, measured and signed (:mod:`.signers`: the signing server, or the
   node's own key); manifest and signature are written into the rootfs at
   :data:`MANIFEST` and :data:`SIGNATURE`. With ``[epm] socket`` set, all
   three steps are first looked up in epm's bundle caches (:mod:`.bundle_cache`:
   a hit is verified against the rootfs before it is written; a miss or an
   epm that is down builds as above, and saves what it built);
   ``signature_method = "client"``: the image must already hold both there
   (its own ``[kbs]`` included, if it wants secrets); the signature is
   verified against the rootfs, nothing is generated;
3. config.json gets the enclave settings rune reads (enclave/config.py):
   ``enclave.type=software``, ``enclave.runtime.path=<carrier>``,
   ``enclave.runtime.args=manifest=<MANIFEST>,signer=<MRSIGNER>``. The
   signer option makes the runtime refuse an enclave signed by any other
   key (docs/builtin-runtimes.md), so swapping manifest and signature in the
   rootfs after this point fails `rune create`.

A bundle that already has enclave settings of its own other than these is
refused (one owner for the enclave settings); running the flow again on a
prepared bundle gives the same settings and succeeds. Any failure leaves
config.json untouched, so the container does not start: rune refuses a
carrier setting without an enclave type.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from ..enclave.config import Settings, read_settings
from ..enclave.identity import dump_manifest, expand_trusted_files, parse_manifest, sigfile
from ..enclave.identity.identity import EnclaveIdentity, signer_id
from ..enclave.identity.manifest import Manifest
from ..enclave.identity.rootfs import RootfsError
from ..enclave.identity.signing import Signer, sign_parsed, verify_parsed
from ..runtime.enclave_setup import is_sandbox
from . import config as carrier_config
from .broker import broker_pin, with_broker
from .bundle_cache import BundleCaches, keys_for, open_caches
from .errors import CarrierError
from .registry import Carrier, choose
from .rootfs import read_head, write_files
from .signers import signer_for
from .workload import Workload, workload_of

log = logging.getLogger("inclavare.carrier")

MANIFEST_DIR = "/.inclavare"
MANIFEST = MANIFEST_DIR + "/enclave.toml"
SIGNATURE = MANIFEST + ".sig"
# The shim's option naming the runtime handler's configuration file (containerd's runtime
# options ConfigPath): for this runtime, the carrier's config.toml.
OPTION_CONFIG = "config_path"
_MAX_FILE = 1 << 20


def prepare(bundle: str, spec: dict[str, Any] | None = None, options: object = None, *,
            container_id: str | None = None) -> None:  # fmt: skip
    """Turn `bundle` into a signed enclave bundle if its container asks for a carrier (module docstring).

    `spec` is config.json as loaded (read from the bundle when None); it is
    updated in place and written back. `options` are the shim's (a mapping or
    an object with attributes); only ``config_path`` is read: another
    config.toml than /etc/inclavare-containers/config.toml when not empty.
    `container_id` defaults to the bundle directory's name, as containerd
    lays bundles out.
    """
    if spec is None:
        spec = _load_spec(bundle)
    annotations = spec.get("annotations") or {}
    process = spec.get("process")
    env = (process.get("env") or []) if isinstance(process, dict) else []
    if not isinstance(annotations, dict) or not isinstance(env, list):
        raise CarrierError("config.json", "annotations must be an object and process.env an array")
    if is_sandbox(annotations, container_id or os.path.basename(os.path.normpath(bundle))):
        return  # the pod's sandbox is never an enclave (runtime/enclave_setup.py)
    settings = read_settings(annotations, env)
    choice = choose(settings, env, annotations)
    if choice.carrier is None:
        return
    carrier = choice.carrier
    path = options.get(OPTION_CONFIG) if isinstance(options, Mapping) else getattr(options, OPTION_CONFIG, None)
    config = carrier_config.load(path if isinstance(path, str) and path else None)
    _check_own_settings(settings, carrier, None)
    rootfs = _rootfs(bundle, spec)
    workload = workload_of(spec, settings)
    carrier.check_program(rootfs, workload.program)
    if config.signature_method == "client":
        identity, how = _signed_by_client(carrier, workload, rootfs, config.expected_signer), "the image's signature"
    else:
        # KBS secrets asked for: the broker the tenant named and the image's CA, pinned and measured.
        template = with_broker(carrier.manifest(workload, MANIFEST), broker_pin(settings, rootfs))
        identity, how = _build_and_sign(carrier.name, template, rootfs, config)
    _check_own_settings(settings, carrier, identity.signer)
    _write_settings(bundle, spec, _settings_for(carrier, identity.signer))
    log.info("carrier %s (%s): %s is enclave %s, signed by %s (MRSIGNER %s)", carrier.name, choice.source,
             workload.program, identity.measurement.hex(), how, identity.signer.hex())  # fmt: skip


def _build_and_sign(carrier: str, template: Manifest, rootfs: str,
                    config: carrier_config.CarrierConfig) -> tuple[EnclaveIdentity, str]:  # fmt: skip
    """Generate, measure and sign, or take all three from the bundle caches ([epm] socket)."""
    caches = open_caches(config.epm_socket)
    if caches is None:
        return _generate_and_sign(template, rootfs, *signer_for(config))
    try:
        return _through_caches(caches, carrier, template, rootfs, config)
    finally:
        caches.close()


def _through_caches(caches: BundleCaches, carrier: str, template: Manifest, rootfs: str,
                    config: carrier_config.CarrierConfig) -> tuple[EnclaveIdentity, str]:  # fmt: skip
    signer: tuple[Signer, str] | None = None
    # A signing server pinned by expected_signer is not asked anything before a hit.
    mrsigner = config.expected_signer if config.server_address else None
    if mrsigner is None:
        signer = signer_for(config)
        mrsigner = signer_id(signer[0].public_key_der())
    try:
        keys = keys_for(carrier, template, rootfs, mrsigner)
    except RootfsError as exc:  # the build below names the file
        log.debug("bundle cache: not used: %s", exc)
        return _generate_and_sign(template, rootfs, *(signer or signer_for(config)))
    manifest = caches.manifest(keys, template)
    if manifest is not None:
        found = caches.signature(keys, manifest, rootfs, mrsigner, SIGNATURE)
        if found is not None:
            sig, identity = found
            _write(rootfs, dump_manifest(manifest), sig)
            how = signer[1] if signer else f"the signing server {config.server_address}"
            return identity, f"{how}, from the bundle cache"
    if caches.refused:
        manifest = None  # its signature did not verify: generate afresh rather than sign what came with it
    signer = signer or signer_for(config)
    identity, how, text, sig = _sign(manifest or template, rootfs, *signer)
    caches.save(keys, text if manifest is None else None, sig.encode())
    return identity, how


def _generate_and_sign(template: Manifest, rootfs: str, signer: Signer, how: str) -> tuple[EnclaveIdentity, str]:
    identity, how, _text, _sig = _sign(template, rootfs, signer, how)
    return identity, how


def _sign(template: Manifest, rootfs: str, signer: Signer,
          how: str) -> tuple[EnclaveIdentity, str, str, sigfile.SignatureFile]:  # fmt: skip
    manifest = expand_trusted_files(template, rootfs)
    text = dump_manifest(manifest)
    parsed = parse_manifest(text, MANIFEST)  # exactly what the runtime will read back
    sig = sign_parsed(parsed, rootfs, signer)
    _write(rootfs, text, sig)
    return sigfile.identity_of(sig, SIGNATURE), how, text, sig


def _write(rootfs: str, text: str, sig: sigfile.SignatureFile) -> None:
    write_files(rootfs, MANIFEST_DIR, {os.path.basename(MANIFEST): text.encode(),
                                       os.path.basename(SIGNATURE): sig.encode()})  # fmt: skip


def _signed_by_client(carrier: Carrier, workload: Workload, rootfs: str, expected: bytes | None) -> EnclaveIdentity:
    """signature_method = "client": the image brings manifest and signature; verify, generate nothing."""
    where = "signature_method client"
    text = read_head(rootfs, MANIFEST, _MAX_FILE + 1, where)
    manifest = parse_manifest(text, MANIFEST)
    sig = sigfile.decode(read_head(rootfs, SIGNATURE, _MAX_FILE + 1, where), SIGNATURE)
    identity = verify_parsed(manifest, sig, rootfs, SIGNATURE, expected_signer=expected)
    program = manifest.wasm.module if manifest.wasm else manifest.entrypoint
    if manifest.runtime != carrier.name or program != workload.program:
        raise CarrierError(MANIFEST, f"signed for the {manifest.runtime} runtime running {program}, but the "
                           f"container asks the {carrier.name} carrier to run {workload.program}")  # fmt: skip
    return identity


def _settings_for(carrier: Carrier, signer: bytes) -> dict[str, str]:
    return {"type": "software", "runtime": carrier.name, "args": f"manifest={MANIFEST},signer={signer.hex()}"}


def _check_own_settings(settings: Settings, carrier: Carrier, signer: bytes | None) -> None:
    """The enclave settings are the carrier's: refuse others. Before the signer is known (`signer`
    None), args may only be what an earlier run of the carrier wrote."""
    ours = _settings_for(carrier, signer or b"")
    for setting in ("type", "runtime", "args"):
        if setting not in settings.found:
            continue
        value, source = settings.found[setting]
        earlier_run = signer is None and setting == "args" and value.startswith(f"manifest={MANIFEST},signer=")
        if value != ours[setting] and not earlier_run:
            raise CarrierError(source, f"{value!r}: the {carrier.name} carrier sets the enclave itself "
                               f"(remove this setting, or the carrier)")  # fmt: skip


def _write_settings(bundle: str, spec: dict[str, Any], ours: dict[str, str]) -> None:
    from ..enclave.config import SOURCES

    annotations = spec.setdefault("annotations", {})
    for setting, value in ours.items():
        annotations[SOURCES[setting][1]] = value
    path = os.path.join(bundle, "config.json")
    fd, tmp = tempfile.mkstemp(dir=bundle, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)
            json.dump(spec, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _load_spec(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(16 << 20))
    except OSError as exc:
        raise CarrierError(path, exc.strerror or "cannot read") from None
    except ValueError as exc:
        raise CarrierError(path, f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CarrierError(path, "must be a JSON object")
    return doc


def _rootfs(bundle: str, spec: dict[str, Any]) -> str:
    root = spec.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if not isinstance(path, str) or not path:
        raise CarrierError("config.json: root.path", "missing: the carrier builds the enclave from the rootfs")
    full = path if os.path.isabs(path) else os.path.join(bundle, path)
    if not os.path.isdir(full):
        raise CarrierError("config.json: root.path", f"{full} is not a directory (is the rootfs mounted?)")
    return full
