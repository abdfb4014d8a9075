# biomed_jax: `make setup` (virtualenv + install), `make test` (what CI runs: all but the `slow` tests),
# `make test-all`, `make quickstart`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart

.PHONY: setup test test-all quickstart clean

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

clean:
	rm -rf $(VENV) runs .pytest_cache *.egg-info
