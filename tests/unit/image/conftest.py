"""Fixtures for the image tests: a file key store holding a KEK, and an ocicrypt config running our provider."""

from __future__ import annotations

import json
import os
import sys

import pytest
from image_helpers import KID

from inclavare.image.keystore import FileKeyStore, ResourcePath


@pytest.fixture
def keystore(tmp_path) -> FileKeyStore:
    (tmp_path / "keys").mkdir()
    store = FileKeyStore(str(tmp_path / "keys"))
    store.put(ResourcePath.parse(KID), os.urandom(32))
    return store


@pytest.fixture
def provider_config(tmp_path, keystore: FileKeyStore) -> str:
    """An ocicrypt key provider config running inclavare's provider (the real module, as a process)."""
    path = tmp_path / "ocicrypt.json"
    cmd = {"path": sys.executable, "args": ["-m", "inclavare.cli.keyprovider", "--keys", keystore.root]}
    path.write_text(json.dumps({"key-providers": {"inclavare": {"cmd": cmd}}}))
    return str(path)
