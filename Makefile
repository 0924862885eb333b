# fedchain developer entry points. Every target bootstraps .venv when it is missing.
PYTHON ?= python3.11
VENV ?= .venv
# torch goes in first, from a pinned spec you can override (e.g. a CUDA build on a GPU host):
#   make test TORCH_SPEC="torch==2.13.0"
# An unpinned torch would pull the newest build with gigabytes of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= --disable-pip-version-check --no-input
BIN := $(VENV)/bin
STAMP := $(VENV)/.fedchain-installed
PYTEST_ARGS ?=

# Flower must never install the app's dependencies itself, phone home, or write outside the repo.
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_HOME := $(CURDIR)/.flwr
export RAY_USAGE_STATS_ENABLED := 0

NODE_STAMP := contracts/node_modules/.fedchain-installed

.PHONY: venv node demo test test-netns test-fast bench fuzz check lint typecheck contracts clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install $(PIP_FLAGS) -q -e ".[dev]"
	touch $@

# npm packages for the contracts: the pinned solc + OpenZeppelin (make contracts) and anvil, the
# JSON-RPC node of the integration tests. Python users never need them to run fedchain.
node: $(NODE_STAMP)

$(NODE_STAMP): contracts/package.json contracts/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd contracts && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.fedchain-installed; \
	else \
		echo "npm not found: skipping contracts/node_modules (the anvil integration test will be skipped)"; \
	fi

demo: $(STAMP)
	$(BIN)/fedchain run --out runs/demo --members 5 --rounds 10
	$(BIN)/fedchain report runs/demo

# The suite without the federation across network namespaces, which needs root: `make test-netns`
# (CI runs both). Fresh clone, 2 cores: 12m30s for the suite, 2m07s for the namespaces test;
# 26m32s and 3m34s on a slower 2-core machine (2026-12-05, where simulated rounds took ~2x as long).
test: $(STAMP) $(NODE_STAMP)
	bash scripts/pytest.sh -m "not netns" $(PYTEST_ARGS)

# A federation across network namespaces (hub and members on their own hosts, link cut, SuperLink
# restart, chain outage); skipped with the reason where namespaces cannot be created (not root).
test-netns: $(STAMP) $(NODE_STAMP)
	bash scripts/pytest.sh -m netns -rs $(PYTEST_ARGS)

# The inner loop: no whole federations, no external processes, stop at the first failure
# (1,128 tests in 198 s wall on 2 shared cores, up to ~8 min when they are busy). `make test` before landing.
test-fast: $(STAMP)
	bash scripts/pytest.sh -m "not slow and not integration" -x -q $(PYTEST_ARGS)

bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bench

# Longer fuzzing of every decoder that reads network or disk bytes (the suite runs a bounded pass).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz bash scripts/pytest.sh tests/test_fuzz.py tests/crypto/test_malformed.py -p no:cacheprovider

contracts: $(NODE_STAMP)
	cd contracts && node ../scripts/compile_contracts.mjs

# lint-imports: the import rules in pyproject.toml [tool.importlinter] (docs/architecture.md, "Import rules").
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy fedchain strategies clients bench

check: lint typecheck test

clean:
	rm -rf $(VENV) .flwr runs .pytest_cache .mypy_cache .ruff_cache
