# The two commands of the README: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cargotrace up --demo

services:
	bash scripts/services.sh

test: $(STAMP) services
	$(BIN)/ruff check .
	$(BIN)/pytest

test-all: $(STAMP) services
	$(BIN)/pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	duplicates --most 20 || true

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
