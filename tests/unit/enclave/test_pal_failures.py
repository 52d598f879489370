"""Every way a PAL can fail, each with its exact one-line message."""

from __future__ import annotations

import pytest

from inclavare.enclave.errors import (
    EnclaveConfigError,
    PalCallFailed,
    PalLoadError,
    PalSymbolMissing,
    PalVersionUnsupported,
)
from inclavare.enclave.pal import PalRuntime

TI = bytes(512)


def message_of(exc_type: type[BaseException], fn, *args: object, **kw: object) -> str:
    with pytest.raises(exc_type) as err:
        fn(*args, **kw)
    return str(err.value)


def test_missing_library():
    msg = message_of(PalLoadError, PalRuntime, "/nonexistent/liberpal-x.so")
    assert msg == "enclave runtime /nonexistent/liberpal-x.so: no such file"


def test_relative_path():
    msg = message_of(PalLoadError, PalRuntime, "liberpal-x.so")
    assert msg == "enclave runtime liberpal-x.so: not an absolute path"


def test_not_a_shared_library(tmp_path):
    bogus = tmp_path / "liberpal-text.so"
    bogus.write_text("not an ELF file\n" * 16)
    msg = message_of(PalLoadError, PalRuntime, str(bogus))
    assert msg.startswith(f"enclave runtime {bogus}: cannot load: ")
    assert "invalid ELF header" in msg
    assert str(bogus) not in msg.split(": cannot load: ", 1)[1]  # dlerror's own copy of the path is cut


def test_unresolved_symbol_fails_at_load_time(tmp_path, cc):
    """RTLD_NOW: an undefined function fails dlopen, not the first call."""
    src = tmp_path / "undef.c"
    src.write_text("int missing_function(void);\nint pal_init(void *a) { (void)a; return missing_function(); }\n")
    lib = str(tmp_path / "liberpal-undef.so")
    cc(lib, [str(src)], ["-shared", "-fPIC"])
    msg = message_of(PalLoadError, PalRuntime, lib)
    assert msg.startswith(f"enclave runtime {lib}: cannot load: ")
    assert "undefined symbol: missing_function" in msg


def test_missing_required_symbol(pal):
    with pytest.raises(PalSymbolMissing) as err:
        PalRuntime(pal("v2-noexec"))
    assert str(err.value) == (
        "enclave runtime liberpal-v2-noexec.so: missing symbol pal_exec, required by pal api version 2"
    )
    assert err.value.symbol == "pal_exec"


def test_version_above_3_is_refused(pal):
    with pytest.raises(PalVersionUnsupported) as err:
        PalRuntime(pal("v3-v4"))
    assert str(err.value) == "enclave runtime liberpal-v3-v4.so: unsupported pal api version 4 (supported: 1 to 3)"
    assert err.value.version == 4


@pytest.mark.parametrize("variant", ["v1", "v2", "v3"])
@pytest.mark.parametrize(("ret", "text"), [(-22, "-22 (Invalid argument)"), (-1000, "-1000 (not an errno value)")])
def test_pal_init_fails(pal, variant, ret, text):
    rt = PalRuntime(pal(variant))
    with pytest.raises(PalCallFailed) as err:
        rt.init(f"debug fail=init:{ret}", "info")
    assert str(err.value) == f"enclave runtime liberpal-{variant}.so: pal_init failed: {text}"
    assert (err.value.call, err.value.ret) == ("pal_init", ret)


def started(pal, variant: str, args: str) -> PalRuntime:
    rt = PalRuntime(pal(variant))
    rt.init(args, "info")
    return rt


@pytest.mark.parametrize("variant", ["v1", "v2", "v3"])
def test_pal_exec_fails(pal, variant):
    rt = started(pal, variant, "fail=exec:-2")
    pid = rt.create_process("/bin/true", ["true"], [], (0, 1, 2))
    msg = message_of(PalCallFailed, rt.wait, pid)
    assert msg == f"enclave runtime liberpal-{variant}.so: pal_exec failed: -2 (No such file or directory)"
    rt.destroy()


@pytest.mark.parametrize(
    ("variant", "call"), [("v1", "pal_exec"), ("v2", "pal_create_process"), ("v3", "pal_create_process")]
)
def test_a_program_that_cannot_be_executed(pal, variant, call):
    """The fixture reports execve's errno, as v1's documented -ENOENT (docs/pal-abi.md, "The fixture PALs")."""
    rt = started(pal, variant, "")
    msg = message_of(PalCallFailed, _run, rt, "/nonexistent/program")
    assert msg == f"enclave runtime liberpal-{variant}.so: {call} failed: -2 (No such file or directory)"
    rt.destroy()


def _run(rt: PalRuntime, path: str) -> int:
    return rt.wait(rt.create_process(path, [path], [], (0, 1, 2)))


@pytest.mark.parametrize(
    ("args", "call", "action", "text"),
    [
        ("fail=create:-12", "pal_create_process", "create", "-12 (Cannot allocate memory)"),
        ("fail=kill:-1", "pal_kill", "kill", "-1 (Operation not permitted)"),
        ("fail=destroy:-38", "pal_destroy", "destroy", "-38 (Function not implemented)"),
        ("fail=report:-5", "pal_get_local_report", "report", "-5 (Input/output error)"),
        ("fail=report:1", "pal_get_local_report", "report", "1 (not an errno value)"),
        ("report-size=400", "pal_get_local_report", "report", "returned a 400-byte report, expected 432"),
    ],
)
def test_v3_call_failures(pal, args, call, action, text):
    rt = started(pal, "v3", args)
    actions = {
        "create": lambda: rt.create_process("/bin/true", ["true"], [], (0, 1, 2)),
        "kill": lambda: rt.kill(-1, 15),
        "destroy": rt.destroy,
        "report": lambda: rt.local_report(TI, b""),
    }
    assert message_of(PalCallFailed, actions[action]) == f"enclave runtime liberpal-v3.so: {call} failed: {text}"
    if action != "destroy":
        rt.destroy()


def test_invalid_log_level_and_type(pal):
    rt = PalRuntime(pal("v2"))
    msg = message_of(EnclaveConfigError, rt.init, "", "verbose")
    assert msg == (
        "enclave runtime liberpal-v2.so: invalid log level 'verbose' "
        "(trace, debug, info, warning, error, fatal, panic, off)"
    )
    msg = message_of(EnclaveConfigError, PalRuntime, pal("v2"), tee="AwsNitroEnclaves")
    assert msg == "enclave.type: unsupported enclave type 'AwsNitroEnclaves' (supported: intelSgx, software)"


def test_debug_log_lines_around_every_call(pal):
    lines: list[str] = []
    rt = PalRuntime(pal("v3"), log=lines.append)
    rt.init("debug", "info")
    rt.local_report(TI, b"")
    rt.destroy()
    assert lines == [
        "liberpal-v3.so: pal_get_version() = 3",
        "liberpal-v3.so: pal_init('debug', 'info', -1, 0)",
        "liberpal-v3.so: pal_init -> 0",
        "liberpal-v3.so: pal_get_local_report(<512 bytes>)",
        "liberpal-v3.so: pal_get_local_report -> (0, 432, <432 bytes>)",
        "liberpal-v3.so: pal_destroy()",
        "liberpal-v3.so: pal_destroy -> 0",
    ]


def test_debug_lines_count_the_environment_instead_of_showing_it(pal):
    lines: list[str] = []
    rt = PalRuntime(pal("v2"), log=lines.append)
    rt.init("", "info")
    rt.wait(rt.create_process("/bin/true", ["true"], ["TOKEN=hunter2", "A=1"], (0, 1, 2)))
    rt.destroy()
    assert "liberpal-v2.so: pal_create_process('/bin/true', ['true'], <2 env entries>, (0, 1, 2))" in lines
    assert not any("hunter2" in line for line in lines)
