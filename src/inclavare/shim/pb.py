"""The shim's protobuf message classes, built straight on protobuf's upb runtime.

Every pod pays the shim's start-up, and containerd waits for it (the shim
is measured against containerd's Go runc shim: bench/shim.py). Importing the
generated ``*_pb2`` modules makes protobuf's Python package import its
pure-Python implementation, text format and descriptor database too —
tens of milliseconds — although the C (upb) implementation does the work.
So, on upb, the shim builds the same classes from the same descriptors
without them: ``make protos`` writes every proto/ file and the well-known
types it imports as serialized FileDescriptorProtos
(``inclavare._proto._descriptors``, by tools/genproto.py), they go into a
private upb DescriptorPool, and each message class is made on first use with
upb's own metaclass, as protobuf's message_factory does. Anywhere else (the
pure-Python or C++ runtime) the generated modules are imported instead.
Either way the classes are protobuf's, with its encoder and decoder:
nothing here encodes a byte.

Usage: ``api.CreateTaskRequest``, ``ev.TaskExit``, ``wkt.Any`` — one
namespace per proto package, with the names protoc gives the classes.
Classes of this pool are not those of the generated modules (a message of
one cannot be assigned into a field of the other; bytes can).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DecodeError", "api", "cg1", "cg2", "ev", "events_svc", "message", "runc", "runc_legacy",
           "runtime_options", "task_types", "ttrpc", "types", "wkt"]  # fmt: skip

_cache: dict[str, Any] = {}
_pool: Any = None
_added: set[str] = set()
# proto package (or message) -> the (staged) file that declares it: only what is used goes into the pool
_FILE_OF = {
    "ttrpc": "github_com/containerd/ttrpc/request.proto",
    "google.rpc": "google/rpc/status.proto",
    "google.protobuf.Any": "google/protobuf/any.proto",  # well-known types: a file each
    "google.protobuf.Empty": "google/protobuf/empty.proto",
    "google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
    "containerd.task.v2": "github_com/containerd/containerd/runtime/v2/task/shim.proto",
    "containerd.v1.types": "github_com/containerd/containerd/api/types/task/task.proto",
    "containerd.types": "github_com/containerd/containerd/api/types/mount.proto",
    "containerd.events": "github_com/containerd/containerd/api/events/task.proto",
    "containerd.services.events.ttrpc.v1": "github_com/containerd/containerd/api/services/ttrpc/events/v1/events.proto",
    "containerd.runc.v1": "github_com/containerd/containerd/runtime/v2/runc/options/oci.proto",
    "containerd.linux.runc": "github_com/containerd/containerd/runtime/linux/runctypes/runc.proto",
    "runtimeoptions.v1": "github_com/containerd/containerd/pkg/runtimeoptions/v1/api.proto",
    "io.containerd.cgroups.v1": "github_com/containerd/cgroups/stats/v1/metrics.proto",
    "io.containerd.cgroups.v2": "github_com/containerd/cgroups/v2/stats/metrics.proto",
}
_upb: bool | None = None


def _upb_pool() -> Any:
    global _pool
    if _pool is None:
        from google._upb import _message

        _pool = _message.DescriptorPool()
    return _pool


def _add_file(name: str, added: set[str]) -> None:
    """Add file `name` to the pool, the files it imports first (once each)."""
    from .._proto._descriptors import FILES

    if name in added:
        return
    dependencies, serialized = FILES[name]
    for dependency in dependencies:
        _add_file(dependency, added)
    _upb_pool().AddSerializedFile(serialized)
    added.add(name)


def _is_upb() -> bool:
    global _upb
    if _upb is None:
        try:
            from google._upb import _message  # noqa: F401
            from google.protobuf.internal import api_implementation

            _upb = api_implementation.Type() == "upb"  # PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION may say otherwise
        except ImportError:
            _upb = False
    return _upb


def message(full_name: str) -> Any:
    """The class of the message `full_name` (e.g. ``containerd.task.v2.CreateTaskRequest``)."""
    cls = _cache.get(full_name)
    if cls is None:
        cls = _cache[full_name] = _build(full_name)
    return cls


def _build(full_name: str) -> Any:
    if _is_upb():
        from google._upb import _message
        from google.protobuf import message as message_mod

        _add_file(_FILE_OF.get(full_name) or _FILE_OF[full_name.rpartition(".")[0]], _added)
        desc = _upb_pool().FindMessageTypeByName(full_name)
        return _message.MessageMeta(desc.name, (message_mod.Message,), {"DESCRIPTOR": desc, "__module__": None})
    return _generated(full_name)


def _generated(full_name: str) -> Any:
    """The class from its generated module (the portable path)."""
    import importlib

    from google.protobuf import descriptor_pool

    for module in _MODULES:
        importlib.import_module(module)
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))


_MODULES = (
    "google.protobuf.any_pb2", "google.protobuf.empty_pb2", "google.protobuf.timestamp_pb2",
    "inclavare._proto.github_com.containerd.ttrpc.request_pb2",
    "inclavare._proto.github_com.containerd.containerd.runtime.v2.task.shim_pb2",
    "inclavare._proto.github_com.containerd.containerd.api.events.task_pb2",
    "inclavare._proto.github_com.containerd.containerd.api.services.ttrpc.events.v1.events_pb2",
    "inclavare._proto.github_com.containerd.containerd.runtime.v2.runc.options.oci_pb2",
    "inclavare._proto.github_com.containerd.containerd.runtime.linux.runctypes.runc_pb2",
    "inclavare._proto.github_com.containerd.containerd.pkg.runtimeoptions.v1.api_pb2",
    "inclavare._proto.github_com.containerd.cgroups.stats.v1.metrics_pb2",
    "inclavare._proto.github_com.containerd.cgroups.v2.stats.metrics_pb2",
)  # fmt: skip


class Package:
    """The messages of one proto package, as attributes (made on first use)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, name: str) -> Any:
        cls = message(f"{self._name}.{name}")
        setattr(self, name, cls)
        return cls


ttrpc = Package("ttrpc")
rpc = Package("google.rpc")
wkt = Package("google.protobuf")
api = Package("containerd.task.v2")
task_types = Package("containerd.v1.types")
types = Package("containerd.types")
ev = Package("containerd.events")
events_svc = Package("containerd.services.events.ttrpc.v1")
runc = Package("containerd.runc.v1")
runc_legacy = Package("containerd.linux.runc")
runtime_options = Package("runtimeoptions.v1")
cg1 = Package("io.containerd.cgroups.v1")
cg2 = Package("io.containerd.cgroups.v2")
