"""Fixtures of the warm-pool tests: a pool (tests/integration/pool/minipool.py) for one
template, and rune configured to claim from it."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from minipool import MiniPool


def template_of(bundle: str) -> tuple[str, str]:
    """(runtime, args) of a bundle's enclave annotations, as rune reads them (commas are spaces)."""
    with open(os.path.join(bundle, "config.json")) as f:
        ann = json.load(f)["annotations"]
    return ann["enclave.runtime.path"], ann["enclave.runtime.args"].replace(",", " ")


@pytest.fixture
def pool_for(tmp_path, tmp_path_factory, pal_dir):
    """pool_for(bundle, n) -> (MiniPool, node config path): `n` instances prepared from a
    copy of `bundle` (the template; the container's own rootfs is what the guest verifies)."""
    made: list[MiniPool] = []
    run = tempfile.mkdtemp(prefix="pool-t", dir="/tmp")

    def make(bundle: str, n: int = 1) -> tuple[MiniPool, str]:
        template = str(tmp_path / f"template{len(made)}")
        shutil.copytree(bundle, template, symlinks=True)
        runtime, args = template_of(bundle)
        pool = MiniPool(os.path.join(run, f"p{len(made)}.sock"), os.path.join(template, "rootfs"), runtime, args)
        made.append(pool)
        pool.fill(n)
        conf = tmp_path_factory.mktemp("etc") / "rune.toml"
        conf.write_text(f'[enclave]\npal_dirs = ["{pal_dir}"]\npool_socket = "{pool.path}"\n')
        return pool, str(conf)

    yield make
    for pool in made:
        pool.close()
    shutil.rmtree(run, ignore_errors=True)
