# Two entry points from a fresh clone: `make test` and `make demo`.
# The dev/test toolchain is installed from requirements/*.lock (exact versions), so the same commit
# gives the same result next month; `make test-latest` runs the suite on the newest releases instead.
PYTHON ?= python3
VENV ?= .venv
LOCK ?= requirements/dev.lock
BIN := $(VENV)/bin
STAMP := $(VENV)/.cachewise-installed
# An empty LOCK installs the newest releases that fit pyproject.toml (test-latest, lock).
CONSTRAINTS := $(if $(LOCK),-c $(LOCK))

.PHONY: test test-latest lint typecheck pytest compat demo bench lock clean django-redis-suite

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[dev]' $(if $(EXTRA),'$(EXTRA)')
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo

typecheck: $(STAMP)
	$(BIN)/mypy

# Branch coverage of src/cachewise, measured in the test process and reported after the run
# (COV= turns it off: the compat venvs and a quick local run).
COV ?= --cov --cov-report=term
pytest: $(STAMP)
	$(BIN)/pytest $(COV) $(PYTEST_ARGS)

test: lint typecheck pytest

# The whole suite on the newest releases of everything (no lock): what tells us an upstream release
# broke something. Its venv is rebuilt each time so "newest" means today's.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test VENV=.venv-latest LOCK= EXTRA=

# The suite on the oldest and newest Django we support, each in a venv of its own with its own lock.
# PY310 / PY312: interpreters to use (.ci/run finds them). The tests marked slow (failovers under
# load, many processes) test Redis and the OS, not the Python or Django version: main pass only.
compat:
	$(MAKE) pytest COV= VENV=.venv-django42 PYTHON='$(PY310)' LOCK=requirements/compat-django42.lock PYTEST_ARGS='-m "not slow"'
	$(MAKE) pytest COV= VENV=.venv-django6 PYTHON='$(PY312)' LOCK=requirements/compat-django6.lock PYTEST_ARGS='-m "not slow"'

# Refresh the locks: resolve the newest releases that fit pyproject.toml in throwaway venvs and
# freeze them. Then run `make test` and `make compat` and commit the lock files with the fixes.
lock:
	scripts/lock.sh requirements/dev.lock '$(PYTHON)' ''
	scripts/lock.sh requirements/compat-django42.lock '$(PY310)' 'Django>=4.2,<5.0'
	scripts/lock.sh requirements/compat-django6.lock '$(PY312)' 'Django>=6.0,<7.0'

# django-redis 7.0's own test suite against django-redis and against cachewise (a few minutes per
# settings module; not part of `make test`): see tests/django_redis_suite/README.md.
django-redis-suite: $(STAMP)
	$(BIN)/python tests/django_redis_suite/run_suite.py --list

demo: $(STAMP)
	$(BIN)/python -m demo $(ARGS)

clean:
	rm -rf $(VENV) .venv-latest .venv-django42 .venv-django6 build *.egg-info src/*.egg-info .mypy_cache .ruff_cache
