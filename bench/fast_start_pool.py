"""bench/fast_start.py's warm pool: an `inclavare epm serve` with one
``[[pool.enclaves]]`` entry per template (docs/epm.md, "The warm pool"), read
through its metrics; and the native sample enclave's bundle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from inclavare.epm.pool.template import read_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")
INCLAVARE = [sys.executable, "-m", "inclavare.cli.tool._main"]


class Pool:
    """epm serving a pool of `size` instances of each template (runtime -> bundle), and
    `node_config`: a rune configuration naming its claim socket (root's, 0600, in the
    caller's 0700 `tmp`: nodeconfig.py refuses anything an other user could change)."""

    def __init__(self, tmp: str, templates: dict[str, str], size: int, env: dict[str, str]) -> None:
        self.size = size
        self.keys = {runtime: read_template(bundle, size).short for runtime, bundle in templates.items()}
        claim = os.path.join(tmp, "pool", "pool.sock")
        self.metrics = f"127.0.0.1:{_free_port()}"
        config = os.path.join(tmp, "epm.toml")
        entries = "".join(f'[[pool.enclaves]]\nbundle = "{b}"\nsize = {size}\n' for b in templates.values())
        _write(config, f'root = "{tmp}/epm-root"\n[grpc]\naddress = "{tmp}/grpc/epm.sock"\n'
                       f'[pool]\nsocket = "{claim}"\nmetrics_address = "{self.metrics}"\n{entries}')  # fmt: skip
        self.node_config = os.path.join(tmp, "rune.toml")
        _write(self.node_config, f'[enclave]\npool_socket = "{claim}"\n')
        self.log = os.path.join(tmp, "epm.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([*INCLAVARE, "epm", "serve", "--config", config], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            self._wait(lambda: self._page() is not None, "epm's metrics", 30)
        except BaseException:
            self.stop()
            raise

    def hits(self, runtime: str) -> float:
        return self._value("epm_pool_hits_total", runtime)

    def wait_full(self) -> None:
        """Until every entry has `size` instances ready: no refill runs during a timed start."""
        self._wait(lambda: all(self._value("epm_pool_ready", r) == self.size for r in self.keys), "a full pool", 120)

    def stop(self) -> None:
        """SIGTERM: epm kills and reaps its idle instances (docs/epm.md, "Stopping")."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _value(self, metric: str, runtime: str) -> float:
        page = self._page() or {}
        want = f'{metric}{{key="{self.keys[runtime]}",runtime="{runtime}"'
        return sum(v for series, v in page.items() if series.startswith(want))

    def _page(self) -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}  # fmt: skip

    def _wait(self, ready, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log) as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"epm: no {what} (exit {self.proc.poll()}): {tail}")
            time.sleep(0.02)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
