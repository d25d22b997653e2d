"""The lake and the published marts on S3-compatible object storage.

``push`` copies a data root's lake (its Parquet files and a consistent copy of the SQLite
manifest) and its current mart set to ``s3://<bucket>/<prefix>/`` as one snapshot;
``RemoteStore`` reads them back (DuckDB through httpfs, pyarrow and polars through their own
S3 support). The bucket holds::

    <prefix>/snapshots/<id>/lake/...         the lake, laid out as in <data>/lake
    <prefix>/snapshots/<id>/marts/...        the mart set, laid out as in <data>/marts
    <prefix>/snapshots/<id>/_snapshot.json   every object of the snapshot: size, sha256
    <prefix>/CURRENT                         which snapshot is current (written last)

Objects are immutable: a push writes a new snapshot (a file unchanged since the previous
one is copied server-side, never uploaded again) and then replaces ``CURRENT`` with one PUT,
which S3 makes atomic, so a reader that starts from ``CURRENT`` sees one whole snapshot,
never a half-written one. A push killed before that leaves only an orphan prefix, which the
next push deletes; snapshots before the previous one are deleted after each push.

Credentials and region come from the usual AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``); another S3-compatible service (MinIO, R2, a
local test server) is named by ``endpoint`` or ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.checksum import sha256_file
from ingest.errors import DuckmarketError, InvalidInputError
from ingest.paths import DataPaths

from .layout import sql_literal

__all__ = [
    "Endpoint",
    "PullReport",
    "PushReport",
    "RemoteError",
    "RemoteStore",
    "is_remote",
    "pull",
    "push",
]

CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"
SNAPSHOT_FILE = "_snapshot.json"
_FORMAT = 1


class RemoteError(DuckmarketError):
    """Object storage refused or failed a request (credentials, bucket, network)."""


def is_remote(location: object) -> bool:
    """Whether ``location`` names object storage (``s3://...``) rather than a local path."""
    return isinstance(location, str) and location.startswith("s3://")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the object store."""

    url: str | None = None  # http(s)://host:port of an S3-compatible service; None: AWS
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_env(cls, url: str | None = None) -> Endpoint:
        env = os.environ
        url = url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise InvalidInputError(f"endpoint {url!r}: expected http://host:port or https://...")
        return cls(
            url=url,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        )

    @property
    def where(self) -> str:
        """The endpoint, as an error message names it."""
        return self.url or "AWS S3"

    @property
    def host(self) -> str | None:
        return urlsplit(self.url).netloc if self.url else None

    @property
    def use_ssl(self) -> bool:
        return not self.url or urlsplit(self.url).scheme == "https"

    def pyarrow(self) -> Any:
        import pyarrow.fs as pafs

        kwargs: dict[str, Any] = {
            "connect_timeout": 10,
            "request_timeout": 60,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if self.url:
            kwargs.update(endpoint_override=self.host, scheme=urlsplit(self.url).scheme)
        if self.region:
            kwargs["region"] = self.region
        if self.access_key and self.secret_key:
            kwargs.update(access_key=self.access_key, secret_key=self.secret_key)
        return pafs.S3FileSystem(**kwargs)

    def polars_options(self) -> dict[str, str]:
        """``storage_options`` for polars' ``scan_parquet``/``read_parquet``."""
        options: dict[str, str] = {}
        if self.url:
            options["aws_endpoint_url"] = self.url
            if not self.use_ssl:
                options["aws_allow_http"] = "true"
        if self.region:
            options["aws_region"] = self.region
        if self.access_key and self.secret_key:
            options.update(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)
        return options

    def duckdb_secret(self) -> str:
        """A ``CREATE SECRET`` statement giving DuckDB's httpfs this endpoint."""
        fields = ["type s3"]
        if self.access_key and self.secret_key:
            fields += [
                f"key_id {sql_literal(self.access_key)}",
                f"secret {sql_literal(self.secret_key)}",
            ]
        if self.region:
            fields.append(f"region {sql_literal(self.region)}")
        if self.url:
            fields += [
                f"endpoint {sql_literal(self.host or '')}",
                "url_style 'path'",
                f"use_ssl {'true' if self.use_ssl else 'false'}",
            ]
        return f"create or replace secret duckmarket_s3 ({', '.join(fields)})"


def _split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidInputError(
            f"{url!r} is not an object-storage address: expected s3://bucket/prefix"
        )
    return parts.netloc, parts.path.strip("/")


@dataclass
class Snapshot:
    """One snapshot in the bucket, as ``CURRENT`` names it."""

    snapshot_id: str
    pushed_at: str
    build_id: str | None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    marts: dict[str, dict[str, Any]] = field(default_factory=dict)


class RemoteStore:
    """A bucket prefix holding duckmarket snapshots."""

    def __init__(self, url: str, endpoint: Endpoint | str | None = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = _split_url(self.url)
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else Endpoint.from_env(endpoint)
        self.fs = self.endpoint.pyarrow()

    # --- keys -----------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """The pyarrow path (``bucket/key``) of ``parts`` under the prefix."""
        return "/".join(p for p in (self.bucket, self.prefix, *parts) if p)

    def s3_url(self, *parts: str) -> str:
        return "s3://" + self.key(*parts)

    # --- reading --------------------------------------------------------------------------

    def _read_json(self, *parts: str) -> dict[str, Any] | None:
        import pyarrow as pa

        try:
            with self.fs.open_input_stream(self.key(*parts)) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            raise RemoteError(
                f"cannot read {self.s3_url(*parts)} at {self.endpoint.where}: {_reason(exc)}"
            ) from None

    def current(self) -> Snapshot | None:
        """The current snapshot, or None before the first push."""
        pointer = self._read_json(CURRENT)
        if pointer is None:
            return None
        return self.snapshot(pointer["snapshot_id"])

    def snapshot(self, snapshot_id: str) -> Snapshot:
        meta = self._read_json(SNAPSHOTS, snapshot_id, SNAPSHOT_FILE)
        if meta is None:
            raise RemoteError(f"{self.url}: snapshot {snapshot_id} is named but missing")
        return Snapshot(
            meta["snapshot_id"],
            meta["pushed_at"],
            meta.get("build_id"),
            meta["files"],
            meta["marts"],
        )

    def check_bucket(self) -> None:
        """A clear error when the bucket does not exist (or cannot be seen)."""
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            info = self.fs.get_file_info(self.bucket)
        except (OSError, pa.ArrowException) as exc:
            raise RemoteError(f"cannot reach {self.endpoint.where}: {_reason(exc)}") from None
        if info.type == pafs.FileType.NotFound:
            raise RemoteError(
                f"no bucket {self.bucket!r} at {self.endpoint.where} (or no access to it): "
                "create it, or check the credentials and the endpoint"
            )

    def require_current(self) -> Snapshot:
        snap = self.current()
        if snap is None:
            self.check_bucket()
            raise InvalidInputError(
                f"{self.url} holds no duckmarket snapshot yet: `duckmarket push {self.url}` first"
            )
        return snap

    def mart_names(self, snap: Snapshot | None = None) -> list[str]:
        snap = snap or self.require_current()
        return sorted(snap.marts)

    def mart_files(self, name: str, snap: Snapshot | None = None) -> list[str]:
        """s3:// addresses of mart ``name``'s files in the current snapshot, in path order."""
        snap = snap or self.require_current()
        single = f"marts/{name}.parquet"
        if single in snap.files:
            return [self.s3_url(SNAPSHOTS, snap.snapshot_id, single)]
        inside = f"marts/{name}/"
        files = sorted(p for p in snap.files if p.startswith(inside) and p.endswith(".parquet"))
        if not files:
            held = ", ".join(sorted(snap.marts)) or "none"
            raise InvalidInputError(f"{self.url} has no mart {name!r}; it holds: {held}")
        return [self.s3_url(SNAPSHOTS, snap.snapshot_id, p) for p in files]

    def mart_glob(self, name: str, snap: Snapshot | None = None) -> str:
        """One s3:// address (a file, or a glob over a partitioned mart's files) of mart
        ``name``: what ``read_parquet`` in DuckDB or ``scan_parquet`` in polars takes."""
        snap = snap or self.require_current()
        files = self.mart_files(name, snap)
        if len(files) == 1 and files[0].endswith(f"/marts/{name}.parquet"):
            return files[0]
        return self.s3_url(SNAPSHOTS, snap.snapshot_id, "marts", name, "**", "*.parquet")

    def connect(self) -> Any:
        """An in-memory DuckDB connection reading this store through httpfs, with one view
        per mart of the current snapshot."""
        import duckdb

        snap = self.require_current()
        con = duckdb.connect()
        try:
            load_httpfs(con)
            con.execute(self.endpoint.duckdb_secret())
            for name in self.mart_names(snap):
                scan = f"read_parquet({sql_literal(self.mart_glob(name, snap))})"
                con.execute(f'create view "{name}" as select * from {scan}')
        except BaseException:
            con.close()
            raise
        return con

    # --- writing --------------------------------------------------------------------------

    def _put_json(self, value: Mapping[str, Any], *parts: str) -> None:
        data = json.dumps(value, indent=1, sort_keys=True).encode()
        with self.fs.open_output_stream(self.key(*parts)) as f:
            f.write(data)

    def history(self) -> list[str]:
        """The snapshots kept, newest (the current one) first."""
        pointer = self._read_json(CURRENT)
        if not pointer:
            return []
        return list(pointer.get("history") or [pointer["snapshot_id"]])

    def snapshot_ids(self) -> list[str]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key(SNAPSHOTS), allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        )


def load_httpfs(con: Any) -> None:
    """Load DuckDB's httpfs extension from its Python package (offline: nothing is
    downloaded), with automatic installs off."""
    import duckdb

    con.execute("set autoinstall_known_extensions = false")
    try:
        import duckdb_extension_httpfs
    except ImportError:
        raise RemoteError(
            "reading s3:// with DuckDB needs the httpfs extension: pip install "
            f"duckdb-extension-httpfs=={duckdb.__version__}"
        ) from None
    path = (
        Path(duckdb_extension_httpfs.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "httpfs.duckdb_extension"
    )
    if not path.is_file():
        raise RemoteError(
            f"duckdb-extension-httpfs has no build for duckdb {duckdb.__version__} ({path}): "
            "install the one of the same version"
        )
    con.execute(f"load {sql_literal(str(path))}")


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class PushReport:
    url: str
    snapshot_id: str
    build_id: str | None
    uploaded: int = 0
    uploaded_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    deleted_snapshots: int = 0


def _local_files(paths: DataPaths, manifest_copy: Path) -> Iterator[tuple[str, Path]]:
    """(key under the snapshot, local file) of everything a push sends."""
    from warehouse.marts import current_set

    lake = paths.lake
    for f in sorted(lake.rglob("*.parquet")):
        rel = f.relative_to(lake)
        if any(part.startswith(".") for part in rel.parts):
            continue  # a writer's temporary file
        yield f"lake/{rel.as_posix()}", f
    yield "lake/manifest.sqlite", manifest_copy
    published = current_set(paths)
    if published is not None:
        for f in sorted(published.path.rglob("*")):
            rel = f.relative_to(published.path)
            if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                yield f"marts/{rel.as_posix()}", f


def push(
    paths: DataPaths,
    url: str,
    endpoint: Endpoint | str | None = None,
    *,
    keep: int = 2,
    on_file: Callable[[str], None] | None = None,
) -> PushReport:
    """Publish the lake and the current mart set of ``paths`` to ``url`` as a new snapshot,
    make it current, and delete snapshots older than the ``keep`` newest."""
    from ingest.lake import Lake
    from warehouse.build import build_lock
    from warehouse.marts import current_set

    if keep < 1:
        raise InvalidInputError("keep must be at least 1 (the snapshot just pushed)")
    if not paths.manifest.is_file():
        raise InvalidInputError(f"{paths.root} holds no lake yet: ingest something first")
    store = RemoteStore(url, endpoint)
    store.check_bucket()
    with (
        build_lock(paths),
        Lake(paths) as lake,
        lake.writer(),
        tempfile.TemporaryDirectory() as tmp,
    ):
        manifest_copy = Path(tmp) / "manifest.sqlite"
        _copy_sqlite(paths.manifest, manifest_copy)
        published = current_set(paths)
        previous = store.current()
        snapshot_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
        report = PushReport(store.url, snapshot_id, published.build_id if published else None)
        before = previous.files if previous else {}
        files: dict[str, dict[str, Any]] = {}

        # the lake's checksums are the manifest's (recorded as each file was written, and
        # the writer lock held now keeps them current); a file whose size disagrees is
        # hashed. Bytes that rotted since fail the pull's check, and `duckmarket verify`.
        recorded = {f"lake/{f.path}": (f.bytes, f.sha256) for f in lake.manifest.live_files()}

        def send(item: tuple[str, Path]) -> tuple[str, dict[str, Any], bool]:
            rel, local = item
            size = local.stat().st_size
            known = recorded.get(rel)
            digest = known[1] if known and known[0] == size else sha256_file(local)
            meta = {"size": size, "sha256": digest}
            target = store.key(SNAPSHOTS, snapshot_id, rel)
            old = before.get(rel)
            if previous is not None and old == meta:
                store.fs.copy_file(store.key(SNAPSHOTS, previous.snapshot_id, rel), target)
                return rel, meta, False
            import pyarrow.fs as pafs

            pafs.copy_files(str(local), target, destination_filesystem=store.fs)
            return rel, meta, True

        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                for rel, meta, uploaded in pool.map(send, _local_files(paths, manifest_copy)):
                    files[rel] = meta
                    if uploaded:
                        report.uploaded += 1
                        report.uploaded_bytes += meta["size"]
                    else:
                        report.copied += 1
                        report.copied_bytes += meta["size"]
                    if on_file is not None:
                        on_file(rel)
            pushed_at = datetime.now(UTC).isoformat()
            meta = {
                "format": _FORMAT,
                "snapshot_id": snapshot_id,
                "pushed_at": pushed_at,
                "build_id": report.build_id,
                "marts": published.marts if published else {},
                "files": files,
            }
            store._put_json(meta, SNAPSHOTS, snapshot_id, SNAPSHOT_FILE)
            history = [snapshot_id, *(store.history() if previous else [])][:keep]
            store._put_json(
                {"snapshot_id": snapshot_id, "pushed_at": pushed_at, "history": history}, CURRENT
            )
            # what no CURRENT names any more: older snapshots, and any a killed push left
            for old_id in store.snapshot_ids():
                if old_id not in history:
                    store.fs.delete_dir(store.key(SNAPSHOTS, old_id))
                    report.deleted_snapshots += 1
        except OSError as exc:
            raise RemoteError(
                f"push to {store.url} at {store.endpoint.where} failed: {_reason(exc)}"
            ) from None
    return report


def _download(store: RemoteStore, snap: Snapshot, rel: str, target: Path, sha256: str) -> None:
    """Object ``rel`` of ``snap`` to ``target``, checked against its checksum."""
    digest = hashlib.sha256()
    with (
        store.fs.open_input_stream(store.key(SNAPSHOTS, snap.snapshot_id, rel)) as src,
        target.open("wb") as dst,
    ):
        while block := src.read(1 << 20):
            digest.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    if digest.hexdigest() != sha256:
        raise RemoteError(f"{rel}: the downloaded object does not match its checksum")


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API, not a file copy)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


@dataclass
class PullReport:
    url: str
    snapshot_id: str
    downloaded: int = 0
    downloaded_bytes: int = 0
    unchanged: int = 0
    removed: int = 0


def pull(
    paths: DataPaths,
    url: str,
    endpoint: Endpoint | str | None = None,
    *,
    on_file: Callable[[str], None] | None = None,
) -> PullReport:
    """Make the lake of ``paths`` the lake of ``url``'s current snapshot: download the files
    that differ (each written to a temporary name and renamed, so a killed pull leaves
    whole files), replace the manifest, and remove lake files the snapshot does not hold.
    ``duckmarket build`` then builds the same marts locally."""
    from ingest.lake import TMP_MARK, Lake

    store = RemoteStore(url, endpoint)
    snap = store.require_current()
    report = PullReport(store.url, snap.snapshot_id)
    paths.lake.mkdir(parents=True, exist_ok=True)
    wanted = {
        rel[len("lake/") :]: meta
        for rel, meta in snap.files.items()
        if rel.startswith("lake/") and rel != "lake/manifest.sqlite"
    }
    manifest = snap.files.get("lake/manifest.sqlite")
    if manifest is None:
        raise RemoteError(f"{store.url}: snapshot {snap.snapshot_id} has no manifest")
    with Lake(paths) as lake, lake.writer(), tempfile.TemporaryDirectory() as tmp:

        def fetch(item: tuple[str, dict[str, Any]]) -> tuple[str, bool]:
            rel, meta = item
            local = paths.lake / rel
            if (
                local.is_file()
                and local.stat().st_size == meta["size"]
                and sha256_file(local) == meta["sha256"]
            ):
                return rel, False
            local.parent.mkdir(parents=True, exist_ok=True)
            part = local.with_name(f".{local.name}{TMP_MARK}pull-{uuid.uuid4().hex[:8]}")
            try:
                _download(store, snap, f"lake/{rel}", part, meta["sha256"])
                os.replace(part, local)
            finally:
                part.unlink(missing_ok=True)
            return rel, True

        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                for rel, downloaded in pool.map(fetch, sorted(wanted.items())):
                    if downloaded:
                        report.downloaded += 1
                        report.downloaded_bytes += wanted[rel]["size"]
                    else:
                        report.unchanged += 1
                    if on_file is not None:
                        on_file(rel)
            downloaded = Path(tmp) / "manifest.sqlite"
            _download(store, snap, "lake/manifest.sqlite", downloaded, manifest["sha256"])
            _copy_sqlite(downloaded, paths.manifest)  # through SQLite: the local one is in WAL mode
        except OSError as exc:
            raise RemoteError(
                f"pull from {store.url} at {store.endpoint.where} failed: {_reason(exc)}"
            ) from None
        for f in sorted(paths.lake.rglob("*.parquet")):
            rel = f.relative_to(paths.lake)
            if not any(part.startswith(".") for part in rel.parts) and rel.as_posix() not in wanted:
                f.unlink()
                report.removed += 1
    return report
