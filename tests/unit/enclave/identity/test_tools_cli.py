"""Every ``inclavare`` tool fails alike (cli/tool/_cli.py): one line naming tool and subcommand once, exit 1.

Before the shared base, each tool had its own argparse subclass: ``inclavare
evidence`` and ``inclavare image`` printed their own name twice, kbs-client
and ratls put ``usage:`` where the subcommand goes, the key provider doubled
its name, ``--help`` of some tools escaped as SystemExit, and an OSError or a
bug gave a traceback.
"""

from __future__ import annotations

import pytest

from inclavare.cli import keyprovider
from inclavare.cli.tool._cli import run
from inclavare.cli.tool._main import GROUPS, main


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["enclave"], "inclavare enclave: the following arguments are required: cmd"),
        (["enclave", "sign", "m"], "inclavare enclave: sign: the following arguments are required: --rootfs"),
        (["evidence", "verify"], "inclavare evidence: verify: the following arguments are required: file"),
        (["image", "unpack", "x"], "inclavare image: unpack: the following arguments are required: BUNDLE"),
        (["kbs", "keygen"], "inclavare kbs: keygen: one of the arguments --admin --token --kek is required"),
        (["kbs-client"], "inclavare kbs-client: the following arguments are required: cmd"),
        (
            ["kbs-client", "reference-value", "add", "x"],
            "inclavare kbs-client: reference-value add: the following arguments are required: values",
        ),
        (["ratls"], "inclavare ratls: the following arguments are required: command"),
        (["ratls", "server", "-p", "x"], "inclavare ratls: server: argument -p/--port: invalid int value: 'x'"),
        (["enclave", "verify", "m", "--rootfs", "r", "--signer", "zz"],
         "inclavare enclave: --signer: must be 64 hex digits (a MRSIGNER)"),
        (["image", "encrypt", "a", "b"], "inclavare image: encrypt: the destination needs a tag (DST_LAYOUT:TAG)"),
    ],
)  # fmt: skip
def test_command_line_mistakes_are_one_line_naming_the_subcommand(argv, line, capsys):
    assert main(argv) == 1
    assert one_line(capsys) == line


@pytest.mark.parametrize("group", list(GROUPS))
def test_help_exits_0_for_every_tool(group, capsys):
    assert main([group, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: inclavare {group}")


def test_the_key_provider_fails_alike(capsys):
    assert keyprovider.main(["--kbs", "http://kbs", "--keys", "/k"]) == 1
    assert one_line(capsys) == "inclavare-keyprovider: --kbs and --keys exclude each other"
    assert keyprovider.main(["--bogus"]) == 1
    assert one_line(capsys) == "inclavare-keyprovider: unrecognized arguments: --bogus"


def _missing_file(argv: list[str]) -> int:
    with open("/nonexistent/inclavare-test"):
        return 0


def _bug(argv: list[str]) -> int:
    raise KeyError("slot")


def test_an_os_error_names_its_file_and_a_bug_is_one_line(capsys):
    assert run("inclavare x", _missing_file, []) == 1
    assert one_line(capsys) == "inclavare x: /nonexistent/inclavare-test: No such file or directory"
    assert run("inclavare x", _bug, []) == 1
    assert one_line(capsys) == "inclavare x: internal error: KeyError: 'slot'"


def test_debug_adds_the_traceback(capsys):
    assert run("inclavare x", _bug, [], debug=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("inclavare x: internal error: KeyError: 'slot'\n")
    assert main(["--debug", "enclave", "verify", "m", "--rootfs", "r", "--signer", "zz"]) == 1
    assert "Traceback" in capsys.readouterr().err
