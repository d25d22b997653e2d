"""``duckmarket serve``: a read-only REST and Arrow API over the warehouse's Parquet marts.

>>> from ingest.server import ServerConfig, create_app   # FastAPI app, for uvicorn
>>> from ingest.paths import DataPaths
>>> app = create_app(ServerConfig(DataPaths.from_arg("data")))

The server reads ``<data>/marts/*.parquet`` only (never ``warehouse.duckdb``, so ``dbt
build`` keeps working), picks up rebuilt marts on the next request, and binds to
127.0.0.1 unless told otherwise. Keys: ``duckmarket serve --add-key NAME [--trusted]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError
from .server_keys import KeyStore, default_keys_file

if TYPE_CHECKING:  # FastAPI and uvicorn load only when serving
    from .server_app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app", "handler", "register_cli", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("ServerConfig", "create_app"):
        from . import server_app

        return getattr(server_app, name)
    raise AttributeError(name)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Run the server in the foreground until interrupted."""
    try:
        import uvicorn

        from .server_app import create_app
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"the data server needs {exc.name}; install it with `pip install fastapi uvicorn`"
        ) from None
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


def handler(args: argparse.Namespace) -> int:
    keys_file = Path(args.keys_file) if args.keys_file else default_keys_file(args.paths.root)
    store = KeyStore(keys_file)
    if args.add_key:
        key = store.add(args.add_key, trusted=args.trusted)
        kind = "trusted (may run SQL)" if args.trusted else "read-only"
        print(f"created {kind} key {args.add_key!r} in {keys_file}", file=sys.stderr)
        print("it is shown once; send it as the X-API-Key header:", file=sys.stderr)
        print(key)
        return 0
    if args.revoke_key:
        if not store.revoke(args.revoke_key):
            raise InvalidInputError(f"no key named {args.revoke_key!r} in {keys_file}")
        print(f"revoked key {args.revoke_key!r}", file=sys.stderr)
        return 0
    if args.list_keys:
        for k in store.list():
            print(f"{k.name}\t{'trusted' if k.trusted else 'read-only'}\t{k.created_at}\t{k.id}")
        return 0
    if args.trusted:
        raise InvalidInputError("--trusted goes with --add-key NAME")
    if not (1 <= args.port <= 65535):
        raise InvalidInputError(f"--port {args.port}: use 1-65535")
    if not store.list():
        print(
            f"warning: no API keys in {keys_file}; every request will be refused. "
            "Create one with `duckmarket serve --add-key NAME`",
            file=sys.stderr,
        )
    if not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host}, reachable from other machines; API keys travel "
            "in clear text unless --ssl-certfile/--ssl-keyfile are given",
            file=sys.stderr,
        )
    from .server_app import ServerConfig
    from .server_sql import SqlLimits

    config = ServerConfig(
        paths=args.paths,
        keys_file=keys_file,
        sql=SqlLimits(timeout_s=args.sql_timeout, max_rows=args.sql_max_rows),
    )
    serve(
        config,
        args.host,
        args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "serve",
        help="serve the marts over HTTP (REST + Arrow), read-only",
        description=(
            "Serve the Parquet marts read-only over HTTP on 127.0.0.1 (OpenAPI at /docs). "
            "Requests need an API key: create one with --add-key NAME."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--keys-file",
        metavar="PATH",
        help="API keys file (default <data>/server/api_keys.json)",
    )
    p.add_argument("--add-key", metavar="NAME", help="create a key, print it once, and exit")
    p.add_argument("--trusted", action="store_true", help="with --add-key: may use POST /v1/sql")
    p.add_argument("--revoke-key", metavar="NAME", help="delete a key and exit")
    p.add_argument("--list-keys", action="store_true", help="list key names and exit")
    p.add_argument("--sql-timeout", type=float, default=10.0, metavar="S", help="default 10")
    p.add_argument("--sql-max-rows", type=int, default=100_000, metavar="N", help="default 100000")
    p.add_argument("--ssl-certfile", metavar="PATH")
    p.add_argument("--ssl-keyfile", metavar="PATH")
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=handler)
