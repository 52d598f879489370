"""The shim's message classes: built on upb from the descriptors, or from the generated modules elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys

from inclavare.shim import pb

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")


def test_upb_classes_speak_the_generated_modules_wire():
    from inclavare._proto.github_com.containerd.containerd.runtime.v2.task import shim_pb2

    ours = pb.api.WaitResponse(exit_status=42)
    ours.exited_at.seconds = 1700000000
    theirs = shim_pb2.WaitResponse.FromString(ours.SerializeToString())
    assert (theirs.exit_status, theirs.exited_at.seconds) == (42, 1700000000)
    assert pb.api.CreateTaskRequest.DESCRIPTOR.full_name == "containerd.task.v2.CreateTaskRequest"
    assert pb.api.StateRequest is pb.api.StateRequest  # made once


def test_the_pure_python_runtime_takes_the_generated_modules():
    code = f"""
import sys
sys.path.insert(0, {SRC!r})
from google.protobuf.internal import api_implementation
from inclavare.shim import pb
m = pb.ev.TaskExit(container_id="c", exit_status=3)
print(api_implementation.Type(), pb.ev.TaskExit.FromString(m.SerializeToString()).exit_status, type(m).__module__)
"""
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    kind, status, module = out.stdout.split()
    assert (kind, status) == ("python", "3")
    assert module.endswith("events.task_pb2")  # the generated module's class, not one made on upb
