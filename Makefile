# Quick start: `make demo` runs the system on the embedded stack; `make test` runs the tests.
# Both create the virtual environment from pyproject.toml when it is missing or stale.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test worker benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/antifraud demo

test: $(STAMP)
	$(BIN)/python -m pytest

worker: $(STAMP)
	$(BIN)/antifraud worker -l info

clean:
	rm -rf $(VENV) .pytest_cache .antifraud-data *.egg-info
