# Two commands do all set-up on a fresh machine with only Python 3.11:
#   make demo   synthetic universe -> lake -> warehouse, offline, then status and verify
#   make test   lint (ruff, sqlfluff) and the whole pytest suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= $(CURDIR)/data

export DUCKMARKET_DATA := $(DATA)

.PHONY: demo test lint format build bench clean-data env

env: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/duckmarket demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint models macros analyses tests --disable-progress-bar --processes 2

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -q

# every benchmark at full size (about 15 minutes); each prints its figures beside a reference
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_hotpath.py
	$(BIN)/python benchmarks/bench_warehouse.py
	$(BIN)/python benchmarks/bench_research.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_spark.py

clean-data:
	rm -rf $(DATA)/lake $(DATA)/marts $(DATA)/export $(DATA)/warehouse.duckdb*
