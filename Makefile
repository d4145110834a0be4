# The two commands of the README: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What the demo runs (the edge and the central services), and that plus the test tools
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev
# PostgreSQL + TimescaleDB compiled to WASM, for the TimescaleDB statements (Debian has no package)
PGLITE := tests/pglite/node_modules/.package-lock.json
# Leaflet for the web pages, from npm (never committed)
WEB    := tracking_api/web/node_modules/.package-lock.json

.PHONY: demo test test-all lint services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[gateway,central]'
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[gateway,central,dev]'
	touch $@

demo: $(RUNTIME) $(WEB)
	$(BIN)/cargotrace up --demo

services:
	bash scripts/services.sh

$(PGLITE): tests/pglite/package-lock.json
	npm ci --prefix tests/pglite --no-audit --no-fund

$(WEB): tracking_api/web/package-lock.json
	npm ci --prefix tracking_api/web --ignore-scripts --no-audit --no-fund || echo "npm failed: the web pages will lack their map"

test: $(DEV) services $(PGLITE) $(WEB)
	$(BIN)/ruff check .
	CARGOTRACE_TEST_ARTIFACTS=$(CURDIR)/test-artifacts $(BIN)/pytest  # the pages' screenshots

test-all: $(DEV) services $(PGLITE) $(WEB)
	CARGOTRACE_TEST_ARTIFACTS=$(CURDIR)/test-artifacts $(BIN)/pytest -m ''

lint: $(DEV)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
