"""The read-only data server: a REST and Arrow API over the warehouse's Parquet marts.

>>> from server import ServerConfig, create_app   # FastAPI app, for uvicorn
>>> from ingest.paths import DataPaths
>>> app = create_app(ServerConfig(DataPaths.from_arg("data")))

The server reads the Parquet marts under ``<data>/marts/`` only (never
``warehouse.duckdb``, so ``dbt build`` keeps working), picks up rebuilt marts on the next
request, and binds to 127.0.0.1 unless told otherwise. Keys: ``duckmarket serve --add-key
NAME [--trusted]``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ingest.errors import InvalidInputError

from .keys import KeyStore, default_keys_file
from .ratelimit import RateLimit
from .sql import SqlLimits

if TYPE_CHECKING:  # FastAPI and uvicorn load only when serving
    from .app import ServerConfig, create_app

__all__ = [
    "KeyStore",
    "RateLimit",
    "ServerConfig",
    "SqlLimits",
    "create_app",
    "default_keys_file",
    "is_loopback",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in ("ServerConfig", "create_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
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

        from .app import create_app
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
