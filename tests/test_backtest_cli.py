"""``duckmarket backtests list|compare`` through a parser built as duckmarket.cli builds it."""

from __future__ import annotations

import argparse
import json

import pytest

from duckmarket.cli_backtests import add_backtest_commands
from ingest.backtests import record_backtest
from ingest.errors import InvalidInputError
from ingest.paths import DataPaths
from tests.test_backtest_store import _run


def _main(argv, data_dir):
    parser = argparse.ArgumentParser(prog="duckmarket")
    add_backtest_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.paths = DataPaths(data_dir)
    return args.func(args)


def test_list_prints_every_run_with_its_metrics(tmp_path, capsys):
    a = record_backtest(tmp_path, **_run())
    assert _main(["backtests", "list"], tmp_path) == 0
    text = capsys.readouterr().out
    assert a.run_id[:12] in text and "pairs_z" in text and "14.60%" in text


def test_list_as_json(tmp_path, capsys):
    a = record_backtest(tmp_path, **_run())
    _main(["backtests", "list", "--json"], tmp_path)
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == [a.run_id]
    assert rows[0]["n_trades"] == 2 and rows[0]["profit_factor"] == "inf"


def test_an_empty_store_says_how_to_record(tmp_path, capsys):
    assert _main(["backtests", "list"], tmp_path) == 0
    assert "record_backtest" in capsys.readouterr().out


def test_compare_shows_config_differences(tmp_path, capsys):
    a = record_backtest(tmp_path, **_run())
    b = record_backtest(tmp_path, **_run(config={"entry": 2.5, "exit": 0.0, "legs": ["KO"]}))
    _main(["backtests", "compare", a.run_id[:8], b.run_id[:8], "--json"], tmp_path)
    doc = json.loads(capsys.readouterr().out)
    assert doc["config_differences"] == {"entry": {a.run_id: 2.0, b.run_id: 2.5}}
    assert len(doc["runs"]) == 2
    _main(["backtests", "compare"], tmp_path)
    assert "configuration differences" in capsys.readouterr().out


def test_compare_refuses_an_unknown_run(tmp_path):
    record_backtest(tmp_path, **_run())
    with pytest.raises(InvalidInputError, match="no recorded run with an id starting 'zzz'"):
        _main(["backtests", "compare", "zzz"], tmp_path)
