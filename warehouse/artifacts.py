"""Trained model artifacts, each traced to the data it was trained on.

Registering a model records, in the manifest (tables ``model_artifacts`` and
``model_artifact_files``), the artifact file (path, size, SHA-256), its type, version and
metrics, the feature set it read (name, version and the hash of its definition), the
walk-forward split it was trained and validated on, and the lake files those features were
built from: the lineage the published ``feature_set_registry`` mart records for the set,
narrowed to the files that hold bars of the split's window (and of the symbols named), plus
the corporate actions of those symbols (adjusted prices depend on them). Every file is
checked against the manifest's ``data_files`` (which keeps every version of every file with
its checksum), so a model can always be traced to the exact bytes it learnt from, and
:func:`check_artifact` says whether the artifact or its data changed since.

>>> a = register_artifact(paths, "model.pkl", model_type="lightgbm", version="1",  # doctest: +SKIP
...                       feature_set="technical", split_id=12, metrics={"auc": 0.61})
>>> [f.path for f in a.files]                                                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ingest.errors import DuckmarketError, InvalidInputError
from ingest.manifest import Manifest, from_us
from ingest.paths import DataPaths

from .marts import connect_marts, current_set

if TYPE_CHECKING:
    from .features import FeatureSet

__all__ = [
    "ArtifactError",
    "ModelArtifact",
    "TrainingFile",
    "check_artifact",
    "get_artifact",
    "list_artifacts",
    "register_artifact",
]


class ArtifactError(DuckmarketError):
    """A model artifact that cannot be registered or found."""


@dataclass(frozen=True)
class TrainingFile:
    """One lake file a model was trained on, as the manifest recorded it."""

    file_id: int
    dataset: str
    path: str
    symbol: str | None
    timeframe: str | None
    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    sha256: str
    #: when the lake replaced this version of the file (None: it is still the live one)
    superseded_at: datetime | None


@dataclass(frozen=True)
class ModelArtifact:
    artifact_id: int
    name: str
    version: str
    model_type: str
    path: str
    bytes: int
    sha256: str
    metrics: dict[str, Any]
    feature_set: str
    feature_definition_sha256: str
    split: dict[str, Any] | None
    marts_set: str | None
    data_files_fingerprint: str
    notes: str | None
    registered_at: datetime
    files: tuple[TrainingFile, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO strings."""
        return json.loads(json.dumps(asdict(self), default=_iso))


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- registration -------------------------------------------------------------------------


def register_artifact(
    paths: DataPaths,
    file: str | os.PathLike[str],
    *,
    model_type: str,
    version: str | int,
    feature_set: str,
    feature_version: int | None = None,
    split_id: int | None = None,
    metrics: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    symbols: Iterable[str] | None = None,
    name: str | None = None,
    notes: str | None = None,
) -> ModelArtifact:
    """Register the trained model in ``file`` (a file, or a directory such as a saved
    model's folder) with the feature set, walk-forward split and symbols it was trained on.

    ``feature_set`` is a declared set (``technical``, ``technical_v1`` or its model name
    ``features_technical_v1``; ``feature_version`` picks a version, default the newest);
    ``metrics`` a mapping, a JSON object as text, or the path of a JSON file; ``name``
    defaults to the file's name without its suffix. ``(name, version)`` is unique.
    """
    artifact = Path(file).expanduser()
    if not artifact.exists():
        raise InvalidInputError(f"no model artifact at {artifact}: give the trained model's file")
    digest, nbytes = _checksum(artifact)
    fs = _feature_set(feature_set, feature_version)
    metrics_obj = _metrics(metrics)
    version = str(version).strip()
    name = (name or artifact.name.split(".")[0] or artifact.name).strip()
    if not version or not model_type.strip():
        raise InvalidInputError("a model artifact needs a model type and a version")

    published = current_set(paths)
    con, names = _marts(paths)
    try:
        registry = _registry_row(con, fs)
        split = _split(con, names, split_id, fs) if split_id is not None else None
    finally:
        con.close()

    with Manifest(paths.manifest) as m:
        existing = m.model_artifacts(name=name, version=version)
        if existing:
            raise ArtifactError(
                f"{name} version {version} is already registered (artifact "
                f"{existing[0]['artifact_id']}); register the new model with another --version"
            )
        files = _training_files(m, registry["data_files"], split, symbols)
        fingerprint = _fingerprint(files)
        artifact_id = m.add_model_artifact(
            {
                "name": name,
                "version": version,
                "model_type": model_type.strip(),
                "path": str(artifact.resolve()),
                "bytes": nbytes,
                "sha256": digest,
                "metrics_json": json.dumps(metrics_obj, sort_keys=True),
                "feature_set": fs.model_name,
                "feature_definition_sha256": fs.definition_hash(),
                "split_json": json.dumps(split, default=_iso) if split else None,
                "marts_set": published.build_id if published else None,
                "data_files_fingerprint": fingerprint,
                "notes": notes,
            },
            [f["file_id"] for f in files],
        )
    return get_artifact(paths, artifact_id)


def _checksum(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file; of a directory, SHA-256 over its files' relative paths
    and checksums (sorted), and their total size."""
    if path.is_file():
        return _file_sha256(path)
    if not path.is_dir():
        raise InvalidInputError(f"{path} is neither a file nor a directory")
    lines, total = [], 0
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        digest, n = _file_sha256(p)
        lines.append(f"{p.relative_to(path).as_posix()}\0{digest}\n")
        total += n
    if not lines:
        raise InvalidInputError(f"{path} is an empty directory: nothing to register")
    return hashlib.sha256("".join(lines).encode()).hexdigest(), total


def _file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    return h.hexdigest(), n


def _feature_set(given: str, version: int | None) -> FeatureSet:
    from .features import FEATURE_SETS  # scipy: imported when a model is registered

    key = given.strip().removeprefix("features_")
    declared = {fs.model_name: fs for fs in FEATURE_SETS.values()}
    known = ", ".join(sorted(declared)) or "none"
    named = re.fullmatch(r"(.+)_v(\d+)", key)
    if named:
        key, v = named.group(1), int(named.group(2))
        if version is not None and version != v:
            raise InvalidInputError(f"feature set {given!r} says version {v}, not {version}")
        version = v
    versions = sorted(fs.version for fs in declared.values() if fs.name == key)
    if not versions:
        raise InvalidInputError(f"no feature set {given!r} is declared (declared: {known})")
    version = versions[-1] if version is None else version
    if version not in versions:
        raise InvalidInputError(
            f"feature set {key!r} has no version {version} (versions: "
            f"{', '.join(map(str, versions))})"
        )
    return declared[f"features_{key}_v{version}"]


def _metrics(metrics: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        value: Any = dict(metrics)
    else:
        text = os.fspath(metrics)
        if not text.lstrip().startswith(("{", "[")):
            try:
                text = Path(text).expanduser().read_text()
            except OSError as exc:
                raise InvalidInputError(
                    f"metrics: {metrics} is neither a JSON object nor a readable file "
                    f"({exc.strerror})"
                ) from None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"metrics are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError('metrics must be a JSON object, e.g. {"auc": 0.61}')
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metrics must be plain JSON values (finite numbers): {exc}"
        ) from None
    return value


def _marts(paths: DataPaths) -> tuple[duckdb.DuckDBPyConnection, set[str]]:
    """The published marts, and their names; an error when no feature set is published."""
    con = connect_marts(paths)
    names = {
        r[0]
        for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()
    }
    if "feature_set_registry" not in names:
        con.close()
        raise ArtifactError(
            f"no published feature sets under {paths.marts}: build the warehouse first "
            "(duckmarket build), then register the model"
        )
    return con, names


def _registry_row(con: duckdb.DuckDBPyConnection, fs: FeatureSet) -> dict[str, Any]:
    cur = con.execute(
        "select definition_sha256, data_files from feature_set_registry where model_name = ?",
        [fs.model_name],
    )
    row = cur.fetchone()
    if row is None:
        raise ArtifactError(
            f"{fs.model_name} is declared but not in the published marts: run duckmarket build"
        )
    if row[0] != fs.definition_hash():
        raise ArtifactError(
            f"the published {fs.model_name} was built from another definition than the one "
            "declared now in warehouse/features.py: rebuild (duckmarket build) before "
            "registering a model trained on it"
        )
    return {"definition_sha256": row[0], "data_files": row[1] or []}


def _split(
    con: duckdb.DuckDBPyConnection, names: set[str], split_id: int, fs: FeatureSet
) -> dict[str, Any]:
    if "walk_forward_splits" not in names:
        raise ArtifactError("no walk_forward_splits mart is published: run duckmarket build")
    cur = con.execute(
        """select split_id, split_mode, timeframe, train_start_ts, train_end_ts,
                  validation_start_ts, validation_end_ts, train_bars, embargo_bars,
                  validation_bars
           from walk_forward_splits where split_id = ? and timeframe = ?""",
        [split_id, fs.timeframe],
    )
    cols = [d[0] for d in cur.description or ()]
    row = cur.fetchone()
    if row is None:
        ids = [
            r[0]
            for r in con.execute(
                "select split_id from walk_forward_splits where timeframe = ? order by 1",
                [fs.timeframe],
            ).fetchall()
        ]
        span = f"{ids[0]}..{ids[-1]}" if ids else "none"
        raise InvalidInputError(
            f"no walk-forward split {split_id} for {fs.timeframe} bars (splits: {span}; "
            "duckmarket sql 'select * from walk_forward_splits' lists them)"
        )
    return dict(zip(cols, row, strict=True))


def _training_files(
    m: Manifest,
    lineage: list[dict[str, Any]],
    split: dict[str, Any] | None,
    symbols: Iterable[str] | None,
) -> list[dict[str, Any]]:
    """The lineage's files a model on ``split`` and ``symbols`` read, each checked against
    the manifest."""
    ids = [int(f["file_id"]) for f in lineage]
    held: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for r in m.query(
            f"""select file_id, dataset, path, symbol, timeframe, sha256 from data_files
                where file_id in ({", ".join("?" for _ in chunk)})""",
            chunk,
        ):
            held[int(r["file_id"])] = r
    files = []
    for f in lineage:
        row = held.get(int(f["file_id"]))
        if row is None or row["sha256"] != f["sha256"]:
            raise ArtifactError(
                f"the published features were built from {f['path']} (file {f['file_id']}), "
                "which this lake's manifest does not hold as built: rebuild (duckmarket "
                "build) and retrain"
            )
        files.append({**f, "symbol": row["symbol"], "timeframe": row["timeframe"]})
    wanted = list(dict.fromkeys(symbols or []))
    if wanted:
        have = {f["symbol"] for f in files if f["dataset"] == "bars"}
        missing = [s for s in wanted if s not in have]
        if missing:
            raise InvalidInputError(
                f"the feature set has no bars of {', '.join(missing)} (it has "
                f"{', '.join(sorted(s for s in have if s)) or 'none'})"
            )
        files = [f for f in files if f["symbol"] in wanted]
    if split is not None:
        start, end = split["train_start_ts"], split["validation_end_ts"]
        files = [
            f
            for f in files
            if f["dataset"] != "bars"
            or f["min_ts"] is None
            or (f["min_ts"] <= end and f["max_ts"] >= start)
        ]
    bar_symbols = {f["symbol"] for f in files if f["dataset"] == "bars"}
    files = [f for f in files if f["dataset"] == "bars" or f["symbol"] in bar_symbols]
    if not any(f["dataset"] == "bars" for f in files):
        raise ArtifactError("no lake files hold bars for that split and those symbols")
    return sorted(files, key=lambda f: f["path"])


def _fingerprint(files: list[dict[str, Any]]) -> str:
    """SHA-256 of the files' checksums joined by commas in path order (the same rule as
    feature_set_registry.data_files_fingerprint)."""
    return hashlib.sha256(",".join(f["sha256"] for f in files).encode()).hexdigest()


# --- reading ------------------------------------------------------------------------------


def list_artifacts(paths: DataPaths, *, name: str | None = None) -> list[ModelArtifact]:
    """Every registered model (of ``name``), oldest first, each with its training files."""
    if not paths.manifest.exists():
        return []
    with Manifest(paths.manifest) as m:
        return [_artifact(m, r) for r in m.model_artifacts(name=name)]


def get_artifact(paths: DataPaths, artifact_id: int | str) -> ModelArtifact:
    """One registered model by id, or by ``name`` or ``name@version`` (the newest if only
    the name is given)."""
    if paths.manifest.exists():
        with Manifest(paths.manifest) as m:
            key = str(artifact_id)
            if key.isdigit():
                rows = m.model_artifacts(artifact_id=int(key))
            else:
                n, _, v = key.partition("@")
                rows = m.model_artifacts(name=n, version=v or None)
            if rows:
                return _artifact(m, rows[-1])
    raise ArtifactError(
        f"no model artifact {artifact_id!r} is registered (duckmarket artifacts lists them)"
    )


def _artifact(m: Manifest, r: dict[str, Any]) -> ModelArtifact:
    files = tuple(
        TrainingFile(
            file_id=f["file_id"],
            dataset=f["dataset"],
            path=f["path"],
            symbol=f["symbol"],
            timeframe=f["timeframe"],
            rows=f["rows"],
            min_ts=_ts(f["min_us"]),
            max_ts=_ts(f["max_us"]),
            sha256=f["sha256"],
            superseded_at=_ts(f["superseded_at"]),
        )
        for f in m.model_artifact_files(int(r["artifact_id"]))
    )
    split = json.loads(r["split_json"]) if r.get("split_json") else None
    return ModelArtifact(
        artifact_id=int(r["artifact_id"]),
        name=r["name"],
        version=r["version"],
        model_type=r["model_type"],
        path=r["path"],
        bytes=int(r["bytes"]),
        sha256=r["sha256"],
        metrics=json.loads(r["metrics_json"] or "{}"),
        feature_set=r["feature_set"],
        feature_definition_sha256=r["feature_definition_sha256"],
        split=split,
        marts_set=r.get("marts_set"),
        data_files_fingerprint=r["data_files_fingerprint"],
        notes=r.get("notes"),
        registered_at=_ts(r["registered_at"]) or datetime.now(UTC),
        files=files,
    )


def _ts(us: int | None) -> datetime | None:
    return None if us is None else from_us(int(us))


def check_artifact(paths: DataPaths, artifact: ModelArtifact) -> list[str]:
    """What changed since the model was registered (empty: nothing): the artifact's bytes,
    the lake files it was trained on, the feature set's definition."""
    problems = []
    where = Path(artifact.path)
    if not where.exists():
        problems.append(f"the artifact {where} is gone")
    else:
        try:
            digest, _ = _checksum(where)
        except InvalidInputError as exc:
            problems.append(str(exc))
        else:
            if digest != artifact.sha256:
                problems.append(f"the artifact {where} changed since it was registered")
    replaced = [f for f in artifact.files if f.superseded_at is not None]
    if replaced:
        problems.append(
            f"{len(replaced)} of {len(artifact.files)} training file(s) have a newer version "
            f"in the lake (first: {replaced[0].path}); the old checksums stay in the manifest"
        )
    from .features import FEATURE_SETS

    fs = FEATURE_SETS.get(artifact.feature_set)
    if fs is None:
        problems.append(f"{artifact.feature_set} is no longer declared in warehouse/features.py")
    elif fs.definition_hash() != artifact.feature_definition_sha256:
        problems.append(f"{artifact.feature_set}'s declared definition changed since")
    return problems


def format_metrics(metrics: Mapping[str, Any], limit: int = 4) -> str:
    """``auc=0.61 sharpe=1.2`` for a table cell."""
    parts = []
    for k, v in list(metrics.items())[:limit]:
        if isinstance(v, float) and math.isfinite(v):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return " ".join(parts) + (" …" if len(metrics) > limit else "")
