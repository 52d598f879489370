"""tools/genproto.py: proto/ at upstream import paths -> an importable subpackage.

No root needed; it lives beside the CRI kit, its only user so far.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def load_genproto():
    spec = importlib.util.spec_from_file_location("genproto", os.path.join(ROOT, "tools", "genproto.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


genproto = load_genproto()

# Two files at non-identifier paths ("ex.ample", "svc-api"), one importing the
# other and a well-known type: the import rewriting must cover both cases.
COMMON = """syntax = "proto3";
package gp.common;
message Thing { string name = 1; }
"""
SERVICE = """syntax = "proto3";
package gp.svc;
import "ex.ample/com-mon/v1/common.proto";
import "google/protobuf/empty.proto";
message Req { gp.common.Thing thing = 1; }
service Svc { rpc Get(Req) returns (google.protobuf.Empty) {} }
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    protos = tmp_path / "proto"
    write(str(protos / "ex.ample/com-mon/v1/common.proto"), COMMON)
    write(str(protos / "ex.ample/svc-api/v1/svc.proto"), SERVICE)
    (tmp_path / "py").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "py"))
    return protos, tmp_path / "py" / "gp_out"


def test_generates_importable_subpackage(tree):
    protos, out = tree
    assert genproto.generate(str(protos), str(out), "gp_out", force=False)
    importlib.invalidate_caches()
    svc = importlib.import_module("gp_out.ex_ample.svc_api.v1.svc_pb2")
    grpc_mod = importlib.import_module("gp_out.ex_ample.svc_api.v1.svc_pb2_grpc")
    common = importlib.import_module("gp_out.ex_ample.com_mon.v1.common_pb2")
    req = svc.Req(thing=common.Thing(name="x"))
    assert svc.Req.FromString(req.SerializeToString()).thing.name == "x"
    assert hasattr(grpc_mod, "SvcStub")
    text = (out / "ex_ample/svc_api/v1/svc_pb2_grpc.py").read_text()
    assert "from gp_out.ex_ample.svc_api.v1 import svc_pb2" in text
    assert "from google.protobuf import empty_pb2" in text  # well-known types stay protobuf's


def test_second_run_is_a_noop_and_a_change_regenerates(tree):
    protos, out = tree
    assert genproto.generate(str(protos), str(out), "gp_out", force=False)
    assert not genproto.generate(str(protos), str(out), "gp_out", force=False)
    os.remove(protos / "ex.ample/svc-api/v1/svc.proto")
    assert genproto.generate(str(protos), str(out), "gp_out", force=False)
    # the whole directory is replaced: the removed file's modules are gone
    assert not (out / "ex_ample/svc_api").exists()
    assert (out / "ex_ample/com_mon/v1/common_pb2.py").exists()


def test_paths_that_collide_as_modules_are_refused(tree, capsys):
    protos, out = tree
    write(str(protos / "ex_ample/com-mon/v1/common.proto"), COMMON)
    assert genproto.main(["--proto-dir", str(protos), "--out", str(out), "--package", "gp_out"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genproto: ")
    assert "same Python module" in err
    assert err.count("\n") == 1


def test_repository_protos_are_generated():
    # make setup ran tools/genproto.py: the CRI stubs import, under the upstream package name.
    api = importlib.import_module("inclavare._proto.k8s_io.cri_api.runtime.v1.api_pb2")
    assert api.DESCRIPTOR.package == "runtime.v1"
    assert {s.name for s in api.DESCRIPTOR.services_by_name.values()} == {"RuntimeService", "ImageService"}
