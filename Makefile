# Two commands: `make run` (the service) and `make test` (the whole suite).
# Both build the virtualenv in .venv from the pinned requirements first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-unit test-integration test-long lint bench soak clean

run: $(VENV)/.runtime
	$(PY) manage.py runstack

test: $(VENV)/.dev
	bin/test

test-unit: $(VENV)/.dev
	bin/test -m "not integration" -n 3

test-integration: $(VENV)/.dev
	bin/test -m integration

# The long forms of the scenarios marked `long` (tests/scale.py); `make test` runs their short forms.
test-long: $(VENV)/.dev
	JOBS_TEST_LONG=1 bin/test -m long

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy . && $(VENV)/bin/lint-imports --no-cache

# The benchmark suite (docs/benchmarks.md): one table, baseline beside ours.
bench: $(VENV)/.dev
	DATABASE_URL=$${BENCH_HISTORY_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/jobs_bench_history} bin/ensure-postgres
	$(PY) -m bench

# The chaos soak (docs/benchmarks.md, "Soak"): SOAK_ARGS="--minutes 30 --seed 3" for a longer one. Not in `make test`
# (tests/integration/test_soak_short.py is its two-minute form there).
soak: $(VENV)/.dev
	$(PY) -m bench.soak $(SOAK_ARGS)

$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.runtime: $(VENV)/.created requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

clean:
	rm -rf $(VENV) var staticfiles .mypy_cache .ruff_cache .pytest_cache
