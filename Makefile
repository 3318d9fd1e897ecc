# The README's first commands. `make demo` runs the whole pipeline on the embedded broker;
# `make test` runs the whole suite (unit, contract, integration). Both create .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast test-pure demo bench broker-start broker-stop clean

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

test: $(STAMP)  ## run the whole test suite: unit, contract and integration (embedded broker)
	$(PY) -m pytest

test-fast: $(STAMP)  ## unit and contract tests only (no broker)
	$(PY) -m pytest -m "not integration"

test-pure: $(STAMP)  ## unit and contract tests with the hot path as Python source (docs/compiled-hot-path.md)
	RECSTREAM_PURE_PYTHON=1 $(PY) -m pytest -m "not integration" -q

demo: $(STAMP)  ## generate history, backfill features, train, evaluate, then run live with scoring
	$(PY) -m demo

bench: $(STAMP)  ## run the benchmarks and print the tables quoted in the README
	$(PY) -m benchmarks.run_all

broker-start: $(STAMP)  ## start the embedded Tansu broker in the background (pid file in .broker/)
	$(PY) -m broker start --background

broker-stop: $(STAMP)  ## stop the background embedded broker
	$(PY) -m broker stop

clean:  ## remove the virtual environment and generated data
	rm -rf $(VENV) .broker data artifacts reports .pytest_cache build
	rm -f *__mypyc*.so events/*.so features/*.so
