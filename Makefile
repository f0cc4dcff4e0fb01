# The two set-up commands of the README: `make run` and `make test`.
# The venv's interpreter: the system's python3 when it is recent enough and can make a venv, else the
# first python3 on PATH. Crawls of a root daemon run as an unprivileged user who must be able to run it,
# and one under a private home (pyenv's in /root, mode 0700) is out of that user's reach.
PYTHON ?= $(firstword $(foreach p,/usr/bin/python3 python3,$(shell $(p) -c 'import sys, ensurepip; \
	sys.exit(sys.version_info < (3, 10))' 2>/dev/null && echo $(p))))
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?=

.PHONY: run test install install-test browser faketime debs bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test debs

# Debian packages the tests need, as COMMAND:PACKAGE[,PACKAGE...]: the packages are installed only
# when the command is missing, with one `apt-get update` for all of them, as root or through sudo.
BROWSER_DEBS := chromium:chromium,chromium-driver
FAKETIME_DEBS := faketime:faketime
apt-install = @missing=; \
	for want in $(1); do \
	  command -v $${want%%:*} >/dev/null || missing="$$missing $$(echo $${want\#*:} | tr , ' ')"; \
	done; \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }

## Debian's Chromium for the browser tests (Playwright drives it; its own browser download does not work here).
browser:
	$(call apt-install,$(BROWSER_DEBS))

## Debian's faketime (libfaketime): the tests run the daemon under a faked clock.
faketime:
	$(call apt-install,$(FAKETIME_DEBS))

## Everything `make test` needs from Debian, with a single apt-get update.
debs:
	$(call apt-install,$(BROWSER_DEBS) $(FAKETIME_DEBS))

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
	$(PY) bench/items.py

docs: install
	$(PY) -m pip install -q sphinx
	$(PY) -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build build dist *.egg-info
