# TwinGraph: `make run` and `make test` are all a newcomer needs (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml ontologies/package-lock.json | sha1sum | cut -c1-12)
QUDT   := ontologies/node_modules/@vocabulary/unit/unit.nq
UPLOT  := ui/node_modules/uplot/dist/uPlot.esm.js

.PHONY: install system-packages run test bench lint clean

install: $(STAMP) $(QUDT) $(UPLOT) system-packages

# PostgreSQL (telemetry), Mosquitto (MQTT ingest), Chromium with its driver (the
# explorer's browser test) and iproute2 (the BACnet test's network namespace) come from
# Debian when missing.
system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (apt-get install$$missing)"; exit 1; fi; fi

$(STAMP): pyproject.toml ontologies/package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# QUDT units and quantity kinds come from npm packages (no Python package ships QUDT 3).
$(QUDT): ontologies/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq npm >/dev/null; \
	  else echo "npm is needed to install the QUDT ontology packages"; exit 1; fi; }
	cd ontologies && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# The explorer's charting library (uPlot), served as it ships: no front-end build step.
# Ordered after $(QUDT), whose rule installs npm when it is missing.
$(UPLOT): ui/package-lock.json | $(QUDT)
	cd ui && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

run: install
	$(BIN)/twingraph serve --demo

# Two pytest-xdist workers; tests/conftest.py groups the work so each worker opens a
# session platform once per store mode and keeps a module's tests together.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check app ingest tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var ontologies/node_modules ui/node_modules
