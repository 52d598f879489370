"""Fixtures of the device plugin tests: a fake host root, kubelet's directory, the plugin in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fakehost import RUNE
from fakekubelet import FakeKubelet

from inclavare.deviceplugin.plugin import DevicePlugin, Options
from inclavare.deviceplugin.resources import Settings


@pytest.fixture
def host(tmp_path) -> str:
    """A host root with rune installed (an executable file where the node install puts it)."""
    root = tmp_path / "host"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/rune").write_text("#!/bin/sh\n")
    (root / "usr/local/bin/rune").chmod(0o755)
    return str(root)


@pytest.fixture
def kubelet_dir(tmp_path) -> str:
    path = tmp_path / "dp"
    path.mkdir()
    return str(path)


@pytest.fixture
def kubelet(kubelet_dir) -> Iterator[FakeKubelet]:
    with FakeKubelet(kubelet_dir) as k:
        yield k


@pytest.fixture
def run_plugin(host, kubelet_dir, tmp_path) -> Iterator[Callable[..., DevicePlugin]]:
    """run_plugin(memory_mib=..., **options) -> the plugin, stepping in a thread until the test ends."""
    running: list[tuple[threading.Thread, threading.Event]] = []

    def start(memory_mib: int = 64, **options) -> DevicePlugin:
        options.setdefault("feature_file", str(tmp_path / "features.d" / "inclavare"))
        options.setdefault("interval", 0.05)
        opts = Options(directory=kubelet_dir, root=host, rune=RUNE, settings=Settings(memory_mib), **options)
        plugin = DevicePlugin(opts)
        stop = threading.Event()
        thread = threading.Thread(target=plugin.run, args=(stop,), daemon=True)
        thread.start()
        running.append((thread, stop))
        return plugin

    yield start
    for thread, stop in running:
        stop.set()
        thread.join(10)
