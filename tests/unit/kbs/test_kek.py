"""KEK sources (file, environment, a KMS-style command), the keyring, and their one-line errors."""

from __future__ import annotations

import base64
import os
import sys

import pytest

from inclavare.kbs.atrest import Kek, KekConfig, KekSource, Keyring, kek_id, load_kek, load_keyring
from inclavare.kbs.config import parse_config
from inclavare.kbs.errors import ConfigError

KEY = bytes(range(100, 132))
KID = kek_id(KEY)


def private(tmp_path, name: str, data: bytes, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def script(tmp_path, body: str) -> tuple[str, ...]:
    path = tmp_path / "provider.py"
    path.write_text(body)
    return (sys.executable, str(path))


def error(source: KekSource) -> str:
    with pytest.raises(ConfigError) as e:
        load_kek(source)
    return str(e.value)


@pytest.mark.parametrize(
    "data",
    [KEY, base64.b64encode(KEY) + b"\n", KEY.hex().encode() + b"\n", b"  " + base64.b64encode(KEY).rstrip(b"=")[:-1]],
    ids=["raw", "base64", "hex", "garbage"],
)
def test_a_key_file_in_any_form(tmp_path, data):
    source = KekSource("storage.kek", file=private(tmp_path, "kek", data))
    if data.startswith(b"  "):
        assert error(source).startswith("kbs.toml: storage.kek.file: ")
        assert "not a 32-byte key" in error(source)
    else:
        assert load_kek(source).id == KID


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = private(tmp_path, "kek", base64.b64encode(KEY), mode=0o644)
    assert error(KekSource("storage.kek", file=path)) == (
        f"kbs.toml: storage.kek.file: {path}: other users may access it (mode 0644); chmod o-rwx"
    )
    os.chmod(path, 0o640)  # a group (root:kbs) may read it
    assert load_kek(KekSource("storage.kek", file=path)).id == KID
    missing = str(tmp_path / "nope")
    assert error(KekSource("storage.kek.previous[0]", file=missing)) == (
        f"kbs.toml: storage.kek.previous[0].file: {missing}: No such file or directory"
    )


def test_a_key_in_the_environment(monkeypatch):
    monkeypatch.setenv("KBS_TEST_KEK", base64.b64encode(KEY).decode())
    assert load_kek(KekSource("storage.kek", env="KBS_TEST_KEK")).id == KID
    monkeypatch.setenv("KBS_TEST_KEK", "x" * 32)  # 32 characters are not a raw key here: env holds text
    assert "storage.kek.env: $KBS_TEST_KEK: not a 32-byte key" in error(KekSource("storage.kek", env="KBS_TEST_KEK"))
    monkeypatch.delenv("KBS_TEST_KEK")
    assert error(KekSource("storage.kek", env="KBS_TEST_KEK")) == (
        "kbs.toml: storage.kek.env: the environment variable KBS_TEST_KEK is not set"
    )


def test_a_command_prints_the_key(tmp_path):
    argv = script(tmp_path, f"import sys; sys.stdout.buffer.write({KEY!r})")
    assert load_kek(KekSource("storage.kek", command=argv)).id == KID


def test_a_command_unwraps_the_key_from_stdin(tmp_path):
    """The KMS form: the file holds the wrapped key, the command turns it into the key (here: base64 -d)."""
    wrapped = private(tmp_path, "kek.wrapped", base64.b64encode(KEY))
    assert load_kek(KekSource("storage.kek", command=("base64", "-d"), stdin=wrapped)).id == KID
    missing = str(tmp_path / "none")
    assert error(KekSource("storage.kek", command=("base64", "-d"), stdin=missing)) == (
        f"kbs.toml: storage.kek.stdin: {missing}: No such file or directory"
    )


def test_a_failing_command_is_one_line_without_its_output(tmp_path):
    argv = script(
        tmp_path,
        f"import sys; print({KEY.hex()!r}); sys.stderr.write('progress\\nkms: AccessDenied for key kbs\\n')\n"
        "sys.exit(3)",
    )
    message = error(KekSource("storage.kek", command=argv))
    assert message == f"kbs.toml: storage.kek.command: {sys.executable} exited 3: kms: AccessDenied for key kbs"
    assert KEY.hex() not in message  # what it printed may be a key: never repeated
    hang = script(tmp_path, "import time; time.sleep(30)")
    assert error(KekSource("storage.kek", command=hang, timeout=0.3)) == (
        f"kbs.toml: storage.kek.command: {sys.executable}: no answer within 0.3 s (storage.kek timeout)"
    )
    assert error(KekSource("storage.kek", command=("/no/such/kms",))) == (
        "kbs.toml: storage.kek.command: /no/such/kms: command not found"
    )
    killed = script(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert error(KekSource("storage.kek", command=killed)).endswith("was killed by signal 9")


def test_the_keyring(tmp_path):
    other = bytes(32)
    config = KekConfig(
        KekSource("storage.kek", file=private(tmp_path, "new", base64.b64encode(KEY))),
        (KekSource("storage.kek.previous[0]", file=private(tmp_path, "old", other)),),
    )
    ring = load_keyring(config)
    assert (ring.current.id, [k.id for k in ring.previous]) == (KID, [kek_id(other)])
    assert ring.get(kek_id(other)) is ring.previous[0]
    assert ring.get("0" * 16) is None
    assert ring.describe() == f"{KID} (storage.kek), {kek_id(other)} (storage.kek.previous[0])"
    assert KEY.hex() not in repr(ring.current)
    assert repr(ring.current) == f"Kek({KID})"
    same = KekConfig(config.current, (config.current,))
    with pytest.raises(ConfigError, match=r"^kbs.toml: storage.kek: the same key as storage.kek"):
        load_keyring(same)
    with pytest.raises(ConfigError, match=r"^x.toml: storage.kek: missing: "):
        load_keyring(None, "x.toml")
    assert Keyring(Kek(KEY)).ids == {KID}


def test_the_config_tables(tmp_path):
    doc = {
        "storage": {
            "path": "kbs.db",
            "kek": {"command": ["kms", "decrypt"], "stdin": "kek.enc", "timeout": 3, "previous": [{"env": "OLD"}]},
        }
    }
    kek = parse_config(doc, base=str(tmp_path)).storage.kek
    assert kek == KekConfig(
        KekSource("storage.kek", command=("kms", "decrypt"), stdin=str(tmp_path / "kek.enc"), timeout=3.0),
        (KekSource("storage.kek.previous[0]", env="OLD"),),
    )
    assert parse_config({}).storage.kek is None  # refused when keys are loaded, naming storage.kek
    for bad, message in [
        ({"file": "a", "env": "B"}, "storage.kek: set exactly one of file, env or command"),
        ({}, "storage.kek: set exactly one of file, env or command"),
        ({"file": "a", "stdin": "b"}, "storage.kek.stdin: only with command"),
        ({"command": []}, "storage.kek.command: must name a program"),
        ({"command": "kms"}, "storage.kek.command: must be a list of non-empty strings"),
        ({"file": "a", "previous": [{"file": "b", "previous": []}]}, "storage.kek.previous[0].previous: unknown key"),
        ({"file": "a", "key": "..."}, "storage.kek.key: unknown key"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_config({"storage": {"kek": bad}})
        assert str(e.value) == f"kbs.toml: {message}", bad
