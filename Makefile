# Every target works from a clean clone: it creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint bench serve clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

# constraints-dev.txt is a known-good resolution of the dev extras (regenerate with
# `.venv/bin/pip freeze --exclude-editable > constraints-dev.txt`): without it pip spends
# minutes backtracking between boto3 and s3fs's aiobotocore pin.
$(STAMP): pyproject.toml constraints-dev.txt | $(BIN)/python
	$(BIN)/pip install -c constraints-dev.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# bubblewrap and libseccomp give evaluator workers full isolation; PostgreSQL is what the metadata tests
# run against (the fixtures start a throwaway cluster with initdb + pg_ctl). Installed when
# we may (root + apt). Where PostgreSQL cannot be found the tests that need it are skipped
# locally, and FAIL under CI=true.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1 || ! /sbin/ldconfig -p 2>/dev/null | grep -q libseccomp.so.2; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2) >/dev/null 2>&1 \
	      || echo "note: could not install bubblewrap; evaluator isolation falls back to resource limits"; \
	  else echo "note: bubblewrap not installed; evaluator isolation falls back to resource limits"; fi; \
	fi
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
	      || echo "note: could not install postgresql; PostgreSQL tests will be skipped (fail under CI=true)"; \
	  else echo "note: postgresql not installed; PostgreSQL tests will be skipped (fail under CI=true)"; fi; \
	fi
	@# Debian's chromium runs the web UI's browser tests (Playwright cannot download its own
	@# browser offline); without it they skip locally and fail under CI=true.
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	      || echo "note: could not install chromium; the UI browser tests cannot run"; \
	  else echo "note: chromium not installed (apt-get install chromium); the UI browser tests will skip"; fi; \
	fi

test: install system-deps
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -n 2 -q

demo: install
	@tmp=$$(mktemp -d); echo "demo home: $$tmp"; \
	AIREGISTRY_HOME=$$tmp $(BIN)/python examples/quickstart.py

lint: install
	$(BIN)/ruff check src tests benchmarks examples

# Serves ./.airegistry-server (or $AIREGISTRY_HOME); creates and prints a key on first use.
serve: install
	@home=$${AIREGISTRY_HOME:-.airegistry-server}; \
	[ -f "$$home/server-keys.json" ] || $(BIN)/airegistry server --home "$$home" --create-key; \
	$(BIN)/airegistry server --home "$$home"

bench: install
	$(BIN)/python benchmarks/bench_validate.py --size-mb 50
	$(BIN)/python benchmarks/bench_evaluators.py
	$(BIN)/python benchmarks/bench_server.py --quick
	$(BIN)/python benchmarks/bench_train.py --quick

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
