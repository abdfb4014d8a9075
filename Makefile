# biomed_jax: `make setup` (virtualenv + install), `make test` (what CI runs: all but the `slow` tests),
# `make test-all`, `make quickstart`, `make docs` (the documentation site on http://127.0.0.1:8000).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart

.PHONY: setup test test-all quickstart docs clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

test-all: setup
	$(BIN)/python -m pytest -q -n 2 tests

quickstart: setup
	$(BIN)/python -m experiments.quickstart --workdir=$(WORKDIR)

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) runs site .pytest_cache *.egg-info
