# make run: set up and run the exporter on this host.  make test: set up and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test check deps golden generate dashboards docs bench clean chart-files image

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

# Every benchmark (scan, garbage, workload, scrape against node_exporter, a short soak) at a small
# size, one table (about ten minutes); bigger: make bench ARGS="--blobs 1000000". Cost curves over
# store sizes: bench/curves.py; the hour-long soak: bench/soak.py
bench: $(VENV)/.installed-test
	$(VENV)/bin/python bench/run.py $(ARGS)

# Every generated file: from mixin/config.yml the alert and recording rules, the dashboards and
# the chart's copies of both; from exporter/config.py the settings tables in docs/configuration.md
# and README.md. Tests fail while one is stale. `dashboards`, `chart-files` and `docs` are old names.
generate dashboards chart-files docs: $(VENV)/.installed
	$(VENV)/bin/python -m mixin
	$(VENV)/bin/python -c 'from pathlib import Path; from exporter import config; config.write_docs(Path("."))'

image:
	docker build -t dtr-sizing-exporter/dtr-sizing-exporter:$$($(PYTHON) -c 'import exporter; print(exporter.__version__)') .

clean:
	rm -rf $(VENV) .pytest_cache
