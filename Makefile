# The two commands of the README: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# PostgreSQL + TimescaleDB compiled to WASM, for the TimescaleDB statements (Debian has no package)
PGLITE := tests/pglite/node_modules/.package-lock.json
# Leaflet for the web pages, from npm (never committed)
WEB    := tracking_api/web/node_modules/.package-lock.json

.PHONY: demo test test-all lint services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) $(WEB)
	$(BIN)/cargotrace up --demo

services:
	bash scripts/services.sh

$(PGLITE): tests/pglite/package-lock.json
	npm ci --prefix tests/pglite --no-audit --no-fund

$(WEB): tracking_api/web/package-lock.json
	npm ci --prefix tracking_api/web --no-audit --no-fund || echo "npm failed: the web pages will lack their map"

test: $(STAMP) services $(PGLITE) $(WEB)
	$(BIN)/ruff check .
	$(BIN)/pytest

test-all: $(STAMP) services $(PGLITE) $(WEB)
	$(BIN)/pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
