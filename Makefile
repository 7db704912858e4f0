# Two entry points from a fresh clone: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cachewise-installed

.PHONY: test lint typecheck pytest compat demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(if $(EXTRA),'$(EXTRA)')
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The suite on the oldest and newest Django we support, each in a venv of its own.
# PY310 / PY312: interpreters to use (.ci/run finds them); EXTRA pins Django in that venv.
compat:
	$(MAKE) pytest VENV=.venv-django42 PYTHON='$(PY310)' EXTRA='Django>=4.2,<5.0'
	$(MAKE) pytest VENV=.venv-django6 PYTHON='$(PY312)' EXTRA='Django>=6.0,<7.0'

demo: $(STAMP)
	$(BIN)/python -m demo $(ARGS)

clean:
	rm -rf $(VENV) .venv-django42 .venv-django6 build *.egg-info src/*.egg-info .mypy_cache .ruff_cache
