"""Model artifacts: a trained model registered with its checksum, type, version and
metrics, the feature set and walk-forward split it used, and the lake files it was trained
on, so it can always be traced to its data (`duckmarket artifacts`)."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pytest

from ingest.manifest import Manifest
from tests.report_support import cli, demo_copy
from warehouse.artifacts import (
    ArtifactError,
    check_artifact,
    get_artifact,
    list_artifacts,
    register_artifact,
)
from warehouse.features import FEATURE_SETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    paths = demo_copy(tmp_path_factory, "artifacts")
    models = paths.root.parent / "models"
    models.mkdir()
    return {"paths": paths, "models": models}


def _model(demo, name: str, content: bytes = b"trained weights") -> str:
    path = demo["models"] / name
    path.write_bytes(content)
    return str(path)


def _mart(paths, sql: str, *params):
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql.format(marts=paths.marts), list(params)).fetchall()
    finally:
        con.close()


def test_a_model_is_traced_to_its_split_and_the_lake_files_of_its_symbols(demo):
    paths = demo["paths"]
    file = _model(demo, "ridge.pkl")
    a = register_artifact(
        paths,
        file,
        model_type="ridge",
        version="1",
        feature_set="technical",
        split_id=7,
        metrics={"auc": 0.61, "sharpe": 1.4},
        symbols=["SYN002", "SYN003"],
    )
    assert a.sha256 == hashlib.sha256(b"trained weights").hexdigest()
    assert a.bytes == len(b"trained weights") and a.name == "ridge" and a.version == "1"
    assert a.metrics == {"auc": 0.61, "sharpe": 1.4}
    assert a.feature_set == "features_technical_v1"
    assert a.feature_definition_sha256 == FEATURE_SETS["features_technical_v1"].definition_hash()
    # the split as the mart publishes it
    (row,) = _mart(
        paths,
        "select train_start_ts, train_end_ts, validation_end_ts "
        "from '{marts}/walk_forward_splits.parquet' where split_id = 7",
    )
    assert a.split is not None and a.split["split_id"] == 7
    assert [a.split["train_start_ts"], a.split["train_end_ts"], a.split["validation_end_ts"]] == [
        t.isoformat() for t in row
    ]
    # bars and corporate actions of the two symbols, each a version the manifest holds
    assert {(f.dataset, f.symbol) for f in a.files} == {
        (d, s) for d in ("bars", "corporate_actions") for s in ("SYN002", "SYN003")
    }
    with Manifest(paths.manifest) as m:
        held = {r["file_id"]: r["sha256"] for r in m.query("select * from data_files")}
    assert all(held[f.file_id] == f.sha256 for f in a.files)
    assert all(f.superseded_at is None for f in a.files)
    assert [x.artifact_id for x in list_artifacts(paths)].count(a.artifact_id) == 1
    assert check_artifact(paths, a) == []


def test_without_a_split_the_model_reads_what_the_feature_set_read(demo):
    paths = demo["paths"]
    a = register_artifact(
        paths, _model(demo, "all.pkl"), model_type="gbm", version="7", feature_set="technical_v1"
    )
    assert a.split is None
    (fingerprint, n) = _mart(
        paths,
        "select data_files_fingerprint, data_file_count from "
        "'{marts}/feature_set_registry.parquet' where model_name = 'features_technical_v1'",
    )[0]
    assert a.data_files_fingerprint == fingerprint and len(a.files) == n


def test_a_directory_artifact_has_one_checksum_over_its_files(demo):
    saved = demo["models"] / "saved_model"
    (saved / "variables").mkdir(parents=True)
    (saved / "model.json").write_text("{}")
    (saved / "variables" / "w.bin").write_bytes(b"\x00\x01")
    a = register_artifact(
        demo["paths"], saved, model_type="torch", version="1", feature_set="technical"
    )
    assert a.bytes == 4 and len(a.sha256) == 64
    (saved / "variables" / "w.bin").write_bytes(b"\x00\x02")
    assert any("changed since" in p for p in check_artifact(demo["paths"], a))


def test_a_name_and_version_are_registered_once(demo):
    paths = demo["paths"]
    register_artifact(
        paths, _model(demo, "once.pkl"), model_type="x", version="1", feature_set="technical"
    )
    with pytest.raises(ArtifactError, match="already registered"):
        register_artifact(
            paths, _model(demo, "once.pkl"), model_type="x", version="1", feature_set="technical"
        )


def test_a_changed_artifact_and_newer_lake_files_are_reported(tmp_path_factory):
    paths = demo_copy(tmp_path_factory, "drift")  # its lake changes: a copy of its own
    file = paths.root.parent / "drift.pkl"
    file.write_bytes(b"weights")
    a = register_artifact(
        paths, file, model_type="x", version="1", feature_set="technical", symbols=["SYN001"]
    )
    # the lake gets a new version of SYN001's daily bars (one more day re-fetched)
    ingest = ["--data-dir", str(paths.root), "ingest", "synthetic", "--universe", "4",
              "--symbols", "SYN001", "--timeframe", "1d", "--start", "2023-12-01",
              "--end", "2024-01-05"]  # fmt: skip
    assert cli(ingest) == 0
    with open(file, "ab") as f:
        f.write(b"retrained")
    problems = check_artifact(paths, get_artifact(paths, a.artifact_id))
    assert any("changed since it was registered" in p for p in problems)
    assert any("newer version in the lake" in p for p in problems)
    replaced = [f for f in get_artifact(paths, "drift@1").files if f.superseded_at]
    assert [(f.dataset, f.symbol) for f in replaced] == [("bars", "SYN001")]


def test_the_command_registers_lists_and_shows(demo, capsys, tmp_path):
    root = str(demo["paths"].root)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"rmse": 0.012}))
    file = _model(demo, "cli.onnx")
    argv = ["--data-dir", root, "artifacts", "register", file, "--model-type", "onnx",
            "--version", "2024.06", "--feature-set", "technical", "--split", "3",
            "--metrics", str(metrics), "--notes", "baseline"]  # fmt: skip
    assert cli(argv) == 0
    assert "registered artifact" in capsys.readouterr().out
    assert cli(["--data-dir", root, "artifacts", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = next(x for x in listed if x["name"] == "cli")
    assert mine["metrics"] == {"rmse": 0.012} and mine["notes"] == "baseline"
    assert mine["split"]["split_id"] == 3 and mine["files"]
    assert cli(["--data-dir", root, "artifacts"]) == 0
    assert "cli" in capsys.readouterr().out
    assert cli(["--data-dir", root, "artifacts", "show", "cli@2024.06"]) == 0
    shown = capsys.readouterr().out
    assert "baseline" in shown and "unchanged" in shown
    assert cli(["--data-dir", root, "artifacts", "show", str(mine["artifact_id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--split", "999"], "no walk-forward split 999 for 1d bars"),
        (["--feature-set", "momentum"], "no feature set 'momentum' is declared"),
        (["--feature-version", "9"], "has no version 9"),
        (["--metrics", "[1, 2]"], "metrics must be a JSON object"),
        (["--metrics", "{auc: 1}"], "metrics are not valid JSON"),
        (["--metrics", "missing.json"], "neither a JSON object nor a readable file"),
        (["--symbols", "NOPE"], "the feature set has no bars of NOPE"),
    ],
)
def test_mistakes_are_one_line(demo, capsys, extra, says):
    base = {"--feature-set": "technical"}
    argv = ["--data-dir", str(demo["paths"].root), "artifacts", "register",
            _model(demo, "bad.pkl"), "--model-type", "x", "--version", "1"]  # fmt: skip
    for flag, value in base.items():
        if flag not in extra:
            argv += [flag, value]
    assert cli(argv + extra) == 1
    err = capsys.readouterr().err
    assert says in " ".join(err.split()), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_a_missing_file_or_no_marts_is_one_line(tmp_path, capsys):
    argv = ["--data-dir", str(tmp_path / "data"), "artifacts", "register",
            str(tmp_path / "nope.pkl"), "--model-type", "x", "--version", "1",
            "--feature-set", "technical"]  # fmt: skip
    assert cli(argv) == 1
    assert "no model artifact at" in capsys.readouterr().err
    (tmp_path / "nope.pkl").write_bytes(b"x")
    assert cli(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no published feature sets under" in err and "duckmarket build" in err
    assert cli(["--data-dir", str(tmp_path / "data"), "artifacts", "show", "7"]) == 1
    assert "no model artifact '7' is registered" in capsys.readouterr().err
    assert cli(["--data-dir", str(tmp_path / "data"), "artifacts"]) == 0
    assert "no model artifacts registered yet" in capsys.readouterr().out
