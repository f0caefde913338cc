# The factory's commands. `make run` and `make test` are the two commands of README.
PYTHON ?= python3
UV_VERSION = 0.13.9
TOOLS = .tools
UV = $(TOOLS)/bin/uv
VENV = .venv
FACTORY = $(VENV)/bin/factory

.PHONY: setup run test ui mlflow-ui clean benchmarks lint

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced  ## create .venv from uv.lock (pinned, reproducible)

run: setup  ## demo landing files, data plane, models and prompts, agents for the default days; then the support agent's shipped challenger prompt evaluated and promoted if the gate passes
	$(FACTORY) demo-data
	$(FACTORY) run
	$(FACTORY) eval support_triage --prompt-file evals/challengers/support_triage.yaml --promote

test: setup  ## lint, then the whole test suite, slow tests included
	$(VENV)/bin/ruff check factory_pipelines tests benchmarks feature_repo evals
	$(VENV)/bin/pytest

ui: setup  ## the Dagster UI on http://127.0.0.1:3000
	$(FACTORY) ui

mlflow-ui: setup  ## the MLflow UI on http://127.0.0.1:5000 (prompts, models, runs, traces)
	$(FACTORY) mlflow-ui

clean:  ## wipe all local state (.factory/)
	$(FACTORY) clean --yes

benchmarks: setup  ## the performance benchmarks, ratios against the bare libraries
	$(VENV)/bin/python -m benchmarks

lint: setup
	$(VENV)/bin/ruff check factory_pipelines tests benchmarks feature_repo evals
