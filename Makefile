# make run: set up and run the exporter on this host.  make test: set up and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test check deps golden dashboards bench clean chart-files image

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@$(VENV)/bin/dtr-sizing-exporter $(ARGS)

check: $(VENV)/.installed
	@$(VENV)/bin/dtr-sizing-exporter check $(ARGS)

deps:
	scripts/install-debs.sh

test: deps $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

golden: $(VENV)/.installed-test
	UPDATE_GOLDEN=1 $(VENV)/bin/python -m pytest tests/e2e -q

# Every benchmark at a small size, one table (a few minutes); bigger: make bench ARGS="--blobs 1000000"
bench: $(VENV)/.installed-test
	$(VENV)/bin/python bench/run.py $(ARGS)

dashboards: $(VENV)/bin/python
	$(VENV)/bin/python dashboards/generate.py

# The chart's copies of alerts/ and dashboards/ (a test fails while they differ).
chart-files:
	scripts/sync-chart-files.sh

image:
	docker build -t dtr-sizing-exporter/dtr-sizing-exporter:$$($(PYTHON) -c 'import exporter; print(exporter.__version__)') .

clean:
	rm -rf $(VENV) .pytest_cache
