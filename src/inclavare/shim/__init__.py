"""containerd-shim-rune-v2: containerd's shim v2 for rune (runtime type ``io.containerd.rune.v2``).

containerd runs a *shim* per pod (per container outside Kubernetes) that
owns the containers' processes and stdio and speaks containerd's Task API
over ttrpc; this one drives rune, as containerd's runc shim drives runc
(containerd v1.6 runtime/v2/runc, pkg/process, pkg/stdio), and calls a
*carrier* before `rune create`, as the original shim-rune did. docs/shim.md
is the user's guide; the parts, bottom up::

    ttrpc.py     the ttrpc framing, sans-IO (frames <-> Request/Response/Refused events)
    pb.py        the protobuf message classes (containerd's protos, built on upb)
    server.py    the ttrpc server loop (a thread per connection and per request)
    client.py    a blocking ttrpc client (events to containerd; the tests)
    reaper.py    the subreaper: every child's exit status; commands via posix_spawn
    rune.py      rune's command line, as go-runc drives runc (log.json errors)
    pump.py, stdio.py, console.py   a process's stdio: pipes or a pty, pumped to containerd's fifos
    process.py   init and exec'd processes and their lifecycles
    mount.py     containerd's snapshot mounts on <bundle>/rootfs
    cgroups.py, cgstats.py   Stats (cgroup v1/v2 Metrics) and OOM events
    options.py   what a runtime handler configures (runc options, a config file)
    carrier.py   the seam where a carrier reworks the bundle before `rune create`
    carrierlog.py  the carrier's `logging` lines as the shim's own log lines
    container.py Create, step by step
    service.py   the Task service: one method per RPC
    events.py    task events forwarded to containerd, in order
    start.py     the `start` action (fork the server, print its address)
    daemon.py    the server process (signals, subreaper, shutdown)
    cleanup.py   the `delete` action (after a shim died)

The carrier seam (:mod:`.carrier`): Create calls ``hook(bundle, spec,
options)`` after mounting the rootfs and before `rune create`; it defaults to
a no-op, and :func:`.carrier.load` is the one place that picks the hook.

The entry point is :mod:`inclavare.cli.shim`; ``make setup`` writes the
launcher build/containerd-shim-rune-v2.
"""
