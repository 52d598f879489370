"""runc-compatible log lines, without the `logging` package.

containerd's runc shim passes ``--log <file> --log-format json`` and, when a
command fails, reads the last ``{"level":"error","msg":...}`` line from that
file to explain the failure, so the shape matters. The text format is
logrus's: ``time="..." level=error msg="..."``. (``logging`` itself would
cost several milliseconds of start-up: it imports ``re`` and ``threading``.)
"""

from __future__ import annotations

import _json
import os
import time

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    __slots__ = ("_own", "fd", "json", "min_level")

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.json = fmt == "json"
        self.min_level = _LEVELS["debug" if debug else "warning"]
        self._own = path is not None
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644) if path else 2

    def line(self, level: str, msg: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        quoted = _json.encode_basestring_ascii(msg)
        if self.json:
            return f'{{"level":"{level}","msg":{quoted},"time":"{stamp}"}}\n'
        return f'time="{stamp}" level={level} msg={quoted}\n'

    def log(self, level: str, msg: str) -> None:
        if _LEVELS[level] < self.min_level:
            return
        try:
            os.write(self.fd, self.line(level, msg).encode())
        except OSError:
            pass  # a full disk or closed stderr must not turn into a second error

    def debug(self, msg: str) -> None:
        self.log("debug", msg)

    def info(self, msg: str) -> None:
        self.log("info", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str) -> None:
        self.log("error", msg)

    @property
    def to_file(self) -> bool:
        return self._own
