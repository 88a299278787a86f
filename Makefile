# Self-documenting: `make help` lists every target that has a `## comment`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
UV_VERSION := 0.13.9
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0
TEST_WORKERS ?= 2

.PHONY: help venv data data-or-skip run repro test lock clean model-from-lock system-tools crd-schemas

help: ## List the targets and what they do
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# --compile-bytecode: .pyc files written at install time; Python never writes them where PYTHONDONTWRITEBYTECODE is
# set (as on CI machines), and then every `dvc`, stage and test subprocess would recompile ~1000 modules (~2 s).
venv: $(VENV)/.installed ## Create .venv from the pinned requirements (only when missing or outdated)

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

data: venv ## Get the data: `dvc pull` when a remote answers, else regenerate and verify against data.dvc
	$(BIN)/python -m pipeline.data

data-or-skip: venv ## `make data`, or (no cache, remote or data.regenerate can provide it) a notice and exit 0: CI
	$(BIN)/python -m ops.repo data

repro: venv data ## Reproduce the pipeline (only stages whose inputs changed)
	$(BIN)/dvc repro

run: repro ## Set up everything, get the data, run the pipeline and print a summary
	$(BIN)/python -m pipeline.summary

model-from-lock: venv ## Put the model HEAD's dvc.lock records in model/: pulled, or reproduced and verified
	$(BIN)/python -m ops.repo get

system-tools: ## Check the system tools the tests need (tools/system-tools.txt); apt-get install them where possible
	@tools/system-tools

# The Argo CD, Argo Rollouts and Flux CRD schemas, offline (tools/crd-schemas: the @kubernetes-models packages,
# pinned by its package-lock.json); `npm ci` only when node_modules is missing or older than the lock file.
CRD_SCHEMAS := tools/crd-schemas
crd-schemas: $(CRD_SCHEMAS)/node_modules/.installed ## Install the CRD schema validator (npm ci in tools/crd-schemas, when missing or outdated)

$(CRD_SCHEMAS)/node_modules/.installed: $(CRD_SCHEMAS)/package.json $(CRD_SCHEMAS)/package-lock.json
	cd $(CRD_SCHEMAS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: venv system-tools crd-schemas ## Run the test suite (TEST_WORKERS=2 pytest-xdist processes, one test module each at a time)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lock: ## Re-pin requirements/*.txt from requirements/*.in
	@for f in serve pipeline dev; do \
		$(BIN)/uv pip compile --quiet --python-version 3.11 --no-header --no-annotate \
			requirements/$$f.in -o requirements/$$f.txt; done

clean: ## Remove pipeline outputs (not the data, the DVC cache or .venv)
	rm -rf artifacts model dvclive

# Feature targets live beside this file, one file per feature, so a fork can delete a feature cleanly.
-include mk/*.mk
