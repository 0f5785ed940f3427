# Orchard — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is the only tool needed up front; `make` installs it with pip when it is missing.
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY_SRC := libs/core/src services/inference/src services/gateway/src services/evaluation/src services/retraining/src pipelines/src cli/src
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n\n"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv

.venv/.installed: $(UV) uv.lock pyproject.toml */pyproject.toml */*/pyproject.toml
	$(UV) sync --all-packages --frozen
	@touch $@

.PHONY: install
install: .venv/.installed ## Install every package and dev tool into .venv (uv, locked)

.PHONY: up
up: install ## Install, then start the local platform (MLflow, runtime, evaluation, retraining, gateway) on loopback
	$(UV) run --frozen orchard up

.PHONY: lint
lint: install ## Ruff (lint + format check) and the import contracts between packages
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

.PHONY: typecheck
typecheck: install ## mypy --strict over every package
	$(UV) run --frozen mypy

# package:folder — each package's tests run in an environment holding only its dependencies
# (plus the dev tools), so no package leans on another's dependency by accident. The MLflow
# server some tests start is an outside program, taken from the full environment.
PACKAGES := core:libs/core gateway:services/gateway inference:services/inference evaluation:services/evaluation retraining:services/retraining pipelines:pipelines

.PHONY: unit
unit: install ## Fast tests only (no real processes), in the full environment
	scripts/pytest-strict .venv/bin/pytest -m "not integration" $(PYTEST_ARGS)

.PHONY: test-packages
test-packages: install ## Each package's tests with only that package's dependencies installed
	@set -e; for spec in $(PACKAGES); do \
	  pkg=$${spec%%:*}; dir=$${spec#*:}; \
	  echo "== orchard-$$pkg, alone in .venvs/$$pkg"; \
	  UV_PROJECT_ENVIRONMENT=.venvs/$$pkg $(UV) sync --quiet --frozen --package orchard-$$pkg --group dev; \
	  ORCHARD_TEST_MLFLOW=$(CURDIR)/.venv/bin/mlflow \
	    scripts/pytest-strict .venvs/$$pkg/bin/pytest -p no:cacheprovider $$dir/tests $(PYTEST_ARGS); \
	done

.PHONY: test-stack
test-stack: install ## The CLI and the whole platform as real processes, the demo's closed loop included
	scripts/pytest-strict .venv/bin/pytest cli/tests tests benchmarks/tests $(PYTEST_ARGS)

.PHONY: test
test: lint typecheck test-packages test-stack ## Install and run everything: lint, types, every test

.PHONY: monitoring
monitoring: install ## Regenerate monitoring/ rules and dashboards from code
	$(UV) run --frozen python monitoring/generate_rules.py
	$(UV) run --frozen python monitoring/grafana/generate.py

# wrk is the load generator: installed with apt when missing and run as root, else asked for.
BENCH_DURATION ?= 10
# Extra arguments for a benchmark script, e.g. BENCH_ARGS="--connections 64 --no-clients".
BENCH_ARGS ?=
.PHONY: wrk
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq wrk >/dev/null; \
	  else \
	    echo "error: the benchmarks need wrk: apt-get install wrk (or brew install wrk)" >&2; exit 1; \
	  fi; }

.PHONY: bench-inference
bench-inference: install wrk ## Benchmark the runtime against kserve.ModelServer (wrk; BENCH_DURATION=10 s per run)
	BENCH_DURATION=$(BENCH_DURATION) .venv/bin/python benchmarks/inference/run.py

.PHONY: bench-gateway
bench-gateway: install wrk ## Benchmark the runtime direct vs through the gateway, and upstream clients (wrk; BENCH_DURATION=10)
	BENCH_DURATION=$(BENCH_DURATION) .venv/bin/python benchmarks/gateway/run.py $(BENCH_ARGS)

.PHONY: bench-evaluation
bench-evaluation: install ## Drift verdicts from stored profiles vs Evidently (100k, 1M rows), and ingest (a few minutes)
	BENCH_DURATION=$(BENCH_DURATION) .venv/bin/python benchmarks/evaluation/run.py $(BENCH_ARGS)

.PHONY: fmt
fmt: install ## Format and auto-fix the code
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: clean
clean: ## Remove the virtual environment, caches and the local data folder
	rm -rf .venv .venvs .mypy_cache .ruff_cache .pytest_cache .orchard
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
