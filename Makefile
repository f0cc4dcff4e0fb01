# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?=

.PHONY: run test install install-test bench docs clean

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
install-test: $(VENV)/.installed-test

## Install and start the daemon in the foreground (store ./projects, http://127.0.0.1:7654/).
run: install
	$(VENV)/bin/scrapy-do $(if $(CONFIG),--config $(CONFIG))

## Install and run the whole test suite.
test: install-test
	$(PY) -m pytest

## Print the engine's speed figures (see bench/README.md).
bench: install-test
	$(PY) bench/dispatch.py

docs: install
	$(PY) -m pip install -q sphinx
	$(PY) -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build build *.egg-info
