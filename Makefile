# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?=

.PHONY: run test install install-test browser bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: setup.py | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test browser

## Debian's Chromium for the browser tests (Playwright drives it; its own browser download does not work here).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

## Install and start the daemon in the foreground (store ./projects, http://127.0.0.1:7654/).
run: install
	$(VENV)/bin/scrapy-do $(if $(CONFIG),--config $(CONFIG))

## Install and run the whole test suite.
test: install-test
	$(PY) -m pytest

## Print the engine's and the API's speed figures (see bench/README.md).
bench: install-test
	$(PY) bench/dispatch.py
	$(PY) bench/api.py

docs: install
	$(PY) -m pip install -q sphinx
	$(PY) -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build build *.egg-info
