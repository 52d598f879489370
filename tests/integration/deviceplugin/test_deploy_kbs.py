"""deploy/kbs as a pod would see it: the ConfigMap and Secret volumes written where the Deployment mounts
them (real keys and a certificate in place of the placeholders), the DSN in the variable the manifest
sets, and two `inclavare kbs serve` replicas on one PostgreSQL. What the manifests promise is checked
against the running servers: the readiness/liveness probe and the Prometheus scrape answer at the paths,
port name and scheme the manifests give, and what one replica stores the other serves.

The one change to the deployed configuration: `listen` becomes 127.0.0.1:0 (loopback, any free port).
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import ssl

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from inclavare.kbs.admin_client import KbsAdmin
from inclavare.testing.kbs import KbsProcess, PostgresServer

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not PostgresServer.available(), reason="PostgreSQL is not installed (make setup)"),
]

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "deploy", "kbs")
PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8


def manifests() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in glob.glob(os.path.join(DEPLOY, "*.yaml")):
        with open(path) as f:
            docs.update({(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(f) if d})
    return docs


def certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbs.inclavare-system.svc")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("kbs.inclavare-system.svc"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])  # fmt: skip
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).add_extension(san, critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    return cert.public_bytes(PEM)


class Pod:
    """The files and environment the Deployment gives its kbs container, under `root`."""

    def __init__(self, root: str, docs: dict[tuple[str, str], dict]) -> None:
        self.root = root
        template = docs[("Deployment", "kbs")]["spec"]["template"]
        self.container = template["spec"]["containers"][0]
        self.admin_key = ed25519.Ed25519PrivateKey.generate()
        tls_key = ec.generate_private_key(ec.SECP256R1())
        token_key = ec.generate_private_key(ec.SECP256R1())
        real = {
            "ops.pub": self.admin_key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "token.pem": token_key.private_bytes(PEM, PKCS8, serialization.NoEncryption()),
            "tls.key": tls_key.private_bytes(PEM, PKCS8, serialization.NoEncryption()),
            "tls.crt": certificate(tls_key),
            "kek": os.urandom(32).hex().encode(),
        }  # fmt: skip
        os.makedirs(root)
        self.ca = os.path.join(root, "ca.pem")
        with open(self.ca, "wb") as f:
            f.write(real["tls.crt"])
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                files = docs[("ConfigMap", volume["configMap"]["name"])].get("data") or {}
            elif "secret" in volume:
                files = docs[("Secret", volume["secret"]["secretName"])]["stringData"]
            else:
                files = {}
            directory = self.path(mount["mountPath"])
            os.makedirs(directory, exist_ok=True)
            for name, text in files.items():
                data = real[name] if "REPLACE" in text else text.encode()
                with open(os.path.join(directory, name), "wb") as f:
                    f.write(data)
                    source = volume.get("secret") or volume.get("configMap") or {}
                    os.fchmod(f.fileno(), source.get("defaultMode", 0o644))  # as kubelet writes them
        env = {e["name"]: e for e in self.container["env"]}
        self.config = self.path(env["INCLAVARE_KBS_CONFIG"]["value"])
        with open(self.config) as f:
            text = f.read()
        assert 'listen = "0.0.0.0:8080"' in text
        text = text.replace('listen = "0.0.0.0:8080"', 'listen = "127.0.0.1:0"').replace('"/etc/', f'"{root}/etc/')
        with open(self.config, "w") as f:
            f.write(text)
        self.dsn_env = next(name for name, e in env.items() if "valueFrom" in e)

    def path(self, inside: str) -> str:
        return os.path.join(self.root, inside.lstrip("/"))


def test_two_replicas_from_the_deployed_configuration(tmp_path, postgres):
    docs = manifests()
    pod = Pod(str(tmp_path / "pod"), docs)
    env = {pod.dsn_env: postgres.dsn(postgres.create_database("kbs_deploy"))}
    probe = pod.container["readinessProbe"]["httpGet"]
    annotations = docs[("Deployment", "kbs")]["spec"]["template"]["metadata"]["annotations"]
    assert pod.container["livenessProbe"]["httpGet"] == probe
    assert probe["port"] == pod.container["ports"][0]["name"]
    with KbsProcess(pod.config, env=env) as a, KbsProcess(pod.config, env=env) as b:
        urls = [f"{probe['scheme'].lower()}://{p.url.removeprefix('http://')}" for p in (a, b)]
        for url in urls:
            r = httpx.get(url + probe["path"], verify=ssl.create_default_context(cafile=pod.ca))
            assert (r.status_code, r.text) == (200, "ok")
            scrape = (
                f"{annotations['prometheus.io/scheme']}://{url.partition('://')[2]}{annotations['prometheus.io/path']}"
            )
            r = httpx.get(scrape, verify=ssl.create_default_context(cafile=pod.ca))
            assert r.status_code == 200
            assert "# TYPE" in r.text
        with KbsAdmin(urls[0], pod.admin_key, verify=pod.ca) as admin:
            admin.set_resource("default/deploy/check", b"stored by one replica")
        with KbsAdmin(urls[1], pod.admin_key, verify=pod.ca) as admin:
            assert "default/deploy/check" in admin.list_resources()
