# Quick start: `make demo` runs the system on the embedded stack; `make test` runs the tests.
# Both create the virtual environment from pyproject.toml when it is missing or stale.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test check worker benchmark clean system-deps

# s3rver (npm): the S3 store a durable embedded broker keeps its topics and offsets in
# (antifraud/stack/embedded.py); the broker-restart tests and `antifraud demo --durable` use it.
S3RVER = antifraud/stack/npm/node_modules/.bin/s3rver

$(S3RVER): antifraud/stack/npm/package-lock.json
	npm ci --prefix antifraud/stack/npm --no-audit --no-fund --loglevel=error
	touch $(S3RVER)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests drive: Chromium for the browser tests (with a CJK font,
# so names in the screenshots are legible), Prometheus (server and promtool) for
# the dashboard and alert-rule tests.
SYSTEM_TOOLS = /usr/bin/chromium /usr/bin/chromedriver /usr/bin/prometheus /usr/bin/promtool \
	/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

system-deps:
	@missing=0; for f in $(SYSTEM_TOOLS); do test -x $$f || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver prometheus fonts-wqy-microhei >/dev/null; \
	fi

demo: $(STAMP) $(S3RVER)
	$(BIN)/antifraud demo

# Lint, format, types, the layers' contracts, and the fast tier (no broker, no Redis; promtool checks
# the alert rules, so the system packages come first): about a minute.
check: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m unit

# The tests drive Chromium and Prometheus: `make test` installs them itself on a fresh machine (as root),
# runs `make check` first, then every tier.
test: $(STAMP) $(S3RVER) system-deps check
	$(BIN)/python -m pytest

worker: $(STAMP)
	$(BIN)/antifraud worker -l info

clean:
	rm -rf $(VENV) .pytest_cache .antifraud-data *.egg-info antifraud/stack/npm/node_modules
