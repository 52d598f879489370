"""`inclavare node install|uninstall`: the refusals that come before anything is installed.

The install itself (a venv, pip, launchers, containerd's file) runs in
tests/integration/carrier/test_node_install.py, in a scratch prefix.
"""

from __future__ import annotations

import os

import pytest

from inclavare.carrier import node
from inclavare.carrier.errors import InstallError


def test_an_existing_command_is_never_replaced(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "rune").write_text("#!/bin/sh\necho the operator's own rune\n")
    with pytest.raises(InstallError, match="bin/rune: exists and was not installed by inclavare node install"):
        node.install(str(tmp_path), str(tmp_path / "containerd.toml"))
    assert sorted(os.listdir(tmp_path)) == ["bin"]  # nothing made, nothing taken


def test_installing_over_an_install_is_refused(tmp_path):
    os.makedirs(node.home(str(tmp_path)))
    (tmp_path / "lib" / "inclavare" / "install.json").write_text("{}")
    with pytest.raises(InstallError, match="already installed under this prefix"):
        node.install(str(tmp_path), str(tmp_path / "containerd.toml"))


def test_uninstall_needs_an_install_record(tmp_path):
    with pytest.raises(InstallError, match=r"install\.json: nothing installed under this prefix"):
        node.uninstall(str(tmp_path))


def test_a_source_that_is_not_there(tmp_path):
    with pytest.raises(InstallError, match=r"^/nonexistent: no such file or directory"):
        node.install(str(tmp_path), str(tmp_path / "containerd.toml"), source="/nonexistent")


def test_missing_directories_are_listed_outermost_first(tmp_path):
    assert node._missing(str(tmp_path / "a" / "b")) == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    assert node._missing(str(tmp_path)) == []
