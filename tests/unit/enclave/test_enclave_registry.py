"""enclave.runtime.path -> factory: PAL paths, entry-point names, and both driven alike."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from inclavare.enclave import registry
from inclavare.enclave.errors import EnclaveRuntimeNotFound, EnclaveUnavailable, PalLoadError

# A Python enclave runtime, installed below as a real distribution (a
# dist-info directory on sys.path) so that importlib.metadata finds it.
RUNTIME_MODULE = '''
"""Test-only Python enclave runtime: its processes are plain host processes."""
import os
import subprocess

from inclavare.enclave.errors import EnclaveNotSupported, EnclaveUnavailable
from inclavare.enclave.interface import INTERFACE_VERSION, split_args

NOT_CALLABLE = 42


class HostProcessRuntime:
    name = "hostproc"

    def __init__(self, *, tee, log=None):
        if tee != "software":
            raise EnclaveUnavailable(f"enclave runtime hostproc: enclave.type {tee} is not available")
        self.procs, self.latest, self.options = {}, 0, []

    def probe(self):
        return {"name": self.name, "kind": "python", "source": "inclavare_test_runtime:HostProcessRuntime",
                "api_version": INTERFACE_VERSION, "tee": "software", "can_kill": True, "can_report": False}

    def init(self, args, log_level, pooled=None):
        self.options = split_args(args)

    def create_process(self, path, argv, env, stdio):
        proc = subprocess.Popen(list(argv), executable=path, env=dict(e.split("=", 1) for e in env),
                                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
        self.procs[proc.pid], self.latest = proc, proc.pid
        return proc.pid

    def wait(self, pid):
        code = self.procs.pop(pid).wait()
        return 128 - code if code < 0 else code

    def kill(self, pid, sig):
        for target in (list(self.procs) if pid == -1 else [self.latest if pid == 0 else pid]):
            os.kill(target, sig)

    def local_report(self, target_info, report_data):
        raise EnclaveNotSupported("enclave runtime hostproc: no reports")

    def destroy(self):
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
'''


def install(site, name: str, entry_points: dict[str, str]) -> None:
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "inclavare_test_runtime.py").write_text(textwrap.dedent(RUNTIME_MODULE))
    install(
        site,
        "inclavare_test_runtimes",
        {
            "hostproc": "inclavare_test_runtime:HostProcessRuntime",
            "broken": "inclavare_test_runtime_missing:Nope",
            "notcallable": "inclavare_test_runtime:NOT_CALLABLE",
        },
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def message_of(fn, *args: object) -> str:
    with pytest.raises(EnclaveRuntimeNotFound) as err:
        fn(*args)
    return str(err.value)


def drive(factory, tee: str) -> None:
    """The init-runelet's sequence, the same for every kind of runtime."""
    rt = factory(tee=tee)
    rt.init("debug,verbose", "info")
    out_r, out_w = os.pipe()
    pid = rt.create_process("/bin/echo", ["echo", "a b"], ["X=1"], (0, out_w, 2))
    assert rt.wait(pid) == 0
    os.close(out_w)
    assert os.read(out_r, 100) == b"a b\n"
    os.close(out_r)
    pid = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    rt.kill(-1, signal.SIGTERM)
    assert rt.wait(pid) == 128 + signal.SIGTERM
    rt.destroy()


def test_pal_path_and_python_runtime_are_driven_alike(pal, site):
    caps = registry.resolve(pal("v3"))(tee="software").probe()
    assert (caps["kind"], caps["api_version"], caps["tee"]) == ("pal", 3, "software")
    drive(registry.resolve(pal("v3")), "software")
    factory = registry.resolve("hostproc")
    assert factory(tee="software").probe()["kind"] == "python"
    drive(factory, "software")


def test_a_runtime_refuses_a_tee_it_cannot_provide(site):
    with pytest.raises(EnclaveUnavailable, match=r"enclave.type intelSgx is not available$"):
        registry.resolve("hostproc")(tee="intelSgx")


def test_available_lists_registered_names(site):
    names = registry.available()
    assert {"hostproc", "broken", "notcallable"} <= set(names)
    assert names == sorted(names)


def test_paths(tmp_path):
    def select(value: str) -> str:
        return message_of(lambda v: registry.select(v, pal_dirs=(str(tmp_path),)), value)

    tail = f"; PAL libraries are loaded only from the node's pal_dirs ({tmp_path}), in the administrator's files"
    assert select("") == "enclave runtime path is not configured"
    assert select("lib/liberpal-x.so") == "enclave runtime lib/liberpal-x.so: not an absolute path" + tail
    missing = str(tmp_path / "liberpal-missing.so")
    assert select(missing) == f"enclave runtime {missing}: No such file or directory" + tail
    assert select(str(tmp_path)) == f"enclave runtime {tmp_path}: not a regular file" + tail


def test_resolving_a_path_loads_nothing_until_called(tmp_path):
    bogus = tmp_path / "liberpal-text.so"
    bogus.write_text("not an ELF file\n" * 16)
    factory = registry.resolve(str(bogus))  # exists: resolves
    with pytest.raises(PalLoadError, match=r"cannot load: .*invalid ELF header"):
        factory(tee="intelSgx")


def test_unknown_and_broken_names(site):
    msg = message_of(registry.resolve, "nosuch")
    assert msg.startswith("enclave runtime nosuch: no runtime registered under this name (registered: ")
    assert "hostproc" in msg
    assert msg.endswith("; a PAL library is given by its absolute path)")
    assert message_of(registry.resolve, "broken") == (
        "enclave runtime broken: cannot load inclavare_test_runtime_missing:Nope: "
        "No module named 'inclavare_test_runtime_missing'"
    )
    assert message_of(registry.resolve, "notcallable") == (
        "enclave runtime notcallable: inclavare_test_runtime:NOT_CALLABLE is not callable"
    )


def test_a_name_registered_twice_is_ambiguous(site):
    install(site, "inclavare_other_runtimes", {"hostproc": "other_pkg:Runtime"})
    assert message_of(registry.resolve, "hostproc") == (
        "enclave runtime hostproc: registered more than once "
        "(inclavare_test_runtime:HostProcessRuntime, other_pkg:Runtime)"
    )


def test_check_validates_without_importing(site):
    registry.check("broken")  # registered: fine until it is loaded
    assert message_of(registry.check, "nosuch").startswith("enclave runtime nosuch: no runtime registered")
