"""``inclavare epm``: the enclave pool manager (the carriers' bundle caches).

    inclavare epm serve [--config FILE] [--log-level LEVEL]
    inclavare epm health [--socket PATH]
    inclavare epm list TYPE [--sub-type S] [--socket PATH]
    inclavare epm delete TYPE ID [--sub-type S] [--socket PATH]

``serve`` runs until SIGTERM or SIGINT, then removes its socket; the
configuration file is /etc/epm/config.toml by default (src/inclavare/epm/config.py).
With ``[[pool.enclaves]]`` in it, ``serve`` also runs the warm enclave pool
(src/inclavare/epm/pool): it fills in the background, gRPC does not wait for it.
The others talk to a running epm (default socket /var/run/epm/epm.sock).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys
import threading

from ._cli import Parser

DEFAULT_SOCKET = "/var/run/epm/epm.sock"


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare epm", description="the enclave pool manager")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the caches on the unix socket")
    serve.add_argument("--config", metavar="FILE", help="configuration (default /etc/epm/config.toml, optional)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    health = sub.add_parser("health", help="is epm answering")
    listing = sub.add_parser("list", help="the entries of one pool")
    listing.add_argument("type", help="the pool, e.g. bundle-cache.wasm.cache2")
    delete = sub.add_parser("delete", help="remove an entry and what was built from it")
    delete.add_argument("type")
    delete.add_argument("id")
    for q in (listing, delete):
        q.add_argument("--sub-type", default="", metavar="S")
    for q in (health, listing, delete):
        q.add_argument("--socket", default=DEFAULT_SOCKET, metavar="PATH")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from ...epm.client import EpmClient

    with EpmClient(args.socket) as client:
        if args.command == "health":
            client.healthz()
            print("ok")
        elif args.command == "list":
            for c in client.list(args.type, args.sub_type):
                parent = f"{c.parent.type}/{c.parent.ID}" if c.HasField("parent") else ""
                print(json.dumps({"ID": c.ID, "subType": c.subType, "size": c.size, "created": c.created,
                                  "parent": parent}))  # fmt: skip
        elif not client.delete((args.type, args.sub_type, args.id)):
            from ...epm.errors import EpmError

            raise EpmError(f"{args.type}/{args.id}", "not cached")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ...epm import config
    from ...epm.server import Server
    from ...epm.store import Store

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    cfg = config.load(args.config)
    store = Store(cfg.root, cfg.database, timeout=cfg.db_timeout, max_size=cfg.max_size, max_age=cfg.max_age)
    try:
        store.open()
    except (OSError, sqlite3.Error) as exc:
        from ...epm.errors import EpmError

        reason = getattr(exc, "strerror", None) or str(exc)
        raise EpmError(cfg.database if isinstance(exc, sqlite3.Error) else cfg.root,
                       f"cannot open the caches: {reason}") from None  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = Server(cfg, store)
    pool = None
    try:
        server.start()
        if cfg.enclaves:
            from ...epm.pool.serve import Pool

            pool = Pool(cfg)
            pool.start()
        stop.wait()
    finally:
        if pool is not None:
            pool.stop()
        server.stop()
        store.close()
    return 0
