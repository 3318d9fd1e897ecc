# The README's first commands. `make demo` runs the whole pipeline on the embedded broker;
# `make test` runs the whole suite (unit, contract, integration). Both create .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv lint test test-fast test-pure demo bench bench-peers bench-experiments broker-start broker-stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

# The hot-path modules are compiled at install (setup.py, events/native.py): editing one
# reinstalls, so the compiled modules never lag behind their source.
COMPILED_SOURCES := setup.py events/native.py $(shell $(PYTHON) -m events.hotpath --sources)

$(STAMP): pyproject.toml $(COMPILED_SOURCES)
	@echo "== creating $(VENV) with $(PYTHON) and installing the project (torch 2.13.0 CPU from the local wheel; the hot path compiled with mypyc)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)  ## create or update .venv

lint: $(STAMP)  ## ruff check and mypy, configured in pyproject.toml: fails on any finding
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

test: $(STAMP)  ## run the whole test suite: unit, contract and integration (embedded broker)
	$(PY) -m pytest

test-fast: $(STAMP)  ## unit and contract tests only (no broker)
	$(PY) -m pytest -m "not integration"

test-pure: $(STAMP)  ## unit and contract tests with the hot path as Python source (docs/compiled-hot-path.md)
	RECSTREAM_PURE_PYTHON=1 $(PY) -m pytest -m "not integration" -q

demo: $(STAMP)  ## generate history, backfill features, train, evaluate, run live with scoring and an A/B test
	$(PY) -m demo

bench: $(STAMP)  ## run every benchmark (~20 min) and write the tables to benchmarks/README.md
	$(PY) -m benchmarks.run_all --write benchmarks/README.md

bench-experiments: $(STAMP)  ## check the A/B statistics on hundreds of simulated experiments (~6 min; docs/experiments.md)
	$(PY) -m benchmarks.bench_experiments

# Quix Streams pins its own confluent-kafka, so the peer comparison runs it from its own
# virtual environment, every package pinned in benchmarks/peers/requirements.txt.
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp

$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@echo "== creating $(PEERS_VENV) with $(PYTHON): Quix Streams for the peer comparison (benchmarks/peers/requirements.txt)"
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r benchmarks/peers/requirements.txt
	$(PEERS_VENV)/bin/python -m pip check --disable-pip-version-check
	@touch $(PEERS_STAMP)

bench-peers: $(STAMP) $(PEERS_STAMP)  ## create .venv-peers (Quix Streams) and compare the features flow with its peers (~4 min)
	$(PY) -m benchmarks.bench_peers

broker-start: $(STAMP)  ## start the embedded Tansu broker in the background (pid file in .broker/)
	$(PY) -m broker start --background

broker-stop: $(STAMP)  ## stop the background embedded broker
	$(PY) -m broker stop

clean:  ## remove the virtual environment and generated data
	rm -rf $(VENV) $(PEERS_VENV) .broker data artifacts reports .pytest_cache .mypy_cache .ruff_cache build
	rm -f *__mypyc*.so events/*.so features/*.so
