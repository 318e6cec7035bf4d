# Two jobs for a newcomer: `make lab` (the notebook workbench) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast setup browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,notebook,baselines]"
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser test (Playwright drives it; it never downloads its own browser).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) notebooks/01_quickstart.ipynb

# --dist loadfile: a test file's tests run on one worker, in order, sharing its module fixtures
test: $(STAMP) browser-deps
	$(PY) -m pytest -q -n 2 --dist loadfile --timeout 900

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow and not browser"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
