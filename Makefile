# The two set-up commands of the README: `make run` and `make test`.
# The venv's interpreter: the system's python3 when it is recent enough and can make a venv, else the
# first python3 on PATH. Crawls of a root daemon run as an unprivileged user who must be able to run it,
# and one under a private home (pyenv's in /root, mode 0700) is out of that user's reach.
PYTHON ?= $(firstword $(foreach p,/usr/bin/python3 python3,$(shell $(p) -c 'import sys, ensurepip; \
	sys.exit(sys.version_info < (3, 10))' 2>/dev/null && echo $(p))))
VENV ?= .venv
PY := $(VENV)/bin/python
# The Ray cluster's own Python for the Ray backend's integration tests (tests/integration/rayhead.py):
# a separate venv, as on a real cluster, so the daemon's venv never gets (or imports) ray.
RAY_VENV ?= .venv-ray
RAY_VERSION ?= 2.60.0
# The original Scrapy Do 0.5.0 daemon, for the migration tests (tests/integration/test_migrate.py): a venv
# of its own, as its users have it. It runs on these releases (checked on Python 3.11); setuptools brings
# back the distutils it imports, gone from Python 3.12.
ORIG_VENV ?= .venv-orig
ORIG_PACKAGES ?= scrapy-do==0.5.0 twisted==26.10.0 scrapy==2.19.0 autobahn==26.11.1 schedule==1.2.2 \
	psutil==7.2.2 python-dateutil==4.0.0 pyopenssl==26.4.0 setuptools
# scrapyd, a peer, for bench/peers.py only (`make install-peers`; no test needs it).
PEERS_VENV ?= .venv-peers
PEERS_PACKAGES ?= scrapyd==1.6.0 twisted==26.10.0 scrapy==2.19.0
CONFIG ?=

.PHONY: run test install install-test install-ray install-orig install-peers browser faketime debs bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

## Ray $(RAY_VERSION) and the daemon's Scrapy version in $(RAY_VENV), once (a few minutes, ~380 MB).
## Where that fails (no Ray wheels for this platform, no registry), the reason (pip's last error line) goes
## to $(RAY_VENV)/.unavailable, the tests that need a Ray head skip saying so, and `make test` goes on;
## `rm -rf $(RAY_VENV)` to try again. Remade when the daemon's test venv is (its Scrapy may have changed).
$(RAY_VENV)/.installed: $(VENV)/.installed-test
	@rm -f $(RAY_VENV)/.unavailable
	@scrapy=$$($(PY) -c 'import scrapy; print(scrapy.__version__)') && log=$$(mktemp) && \
	echo "$(RAY_VENV): installing ray[default]==$(RAY_VERSION) and scrapy==$$scrapy (a few minutes)" && \
	if { [ -x $(RAY_VENV)/bin/python ] || $(PYTHON) -m venv $(RAY_VENV); } >$$log 2>&1 && \
	   $(RAY_VENV)/bin/python -m pip install -q --upgrade pip >>$$log 2>&1 && \
	   $(RAY_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	     "ray[default]==$(RAY_VERSION)" "scrapy==$$scrapy" >>$$log 2>&1; then \
	  echo "$(RAY_VENV): ready"; \
	else \
	  mkdir -p $(RAY_VENV); \
	  { grep '^ERROR' $$log || grep . $$log || echo 'the install failed and printed nothing'; } \
	    | tail -n 1 > $(RAY_VENV)/.unavailable; \
	  echo "$(RAY_VENV): Ray is unavailable, its tests will skip: $$(cat $(RAY_VENV)/.unavailable)"; \
	fi; rm -f $$log; touch $@

## Scrapy Do 0.5.0 from PyPI in $(ORIG_VENV), once (under a minute, ~150 MB); as for Ray, a failure is written
## to $(ORIG_VENV)/.unavailable and the migration tests skip saying so. `rm -rf $(ORIG_VENV)` to try again.
$(ORIG_VENV)/.installed:
	@rm -f $(ORIG_VENV)/.unavailable
	@log=$$(mktemp) && echo "$(ORIG_VENV): installing scrapy-do==0.5.0 (under a minute)" && \
	if { [ -x $(ORIG_VENV)/bin/python ] || $(PYTHON) -m venv $(ORIG_VENV); } >$$log 2>&1 && \
	   $(ORIG_VENV)/bin/python -m pip install -q --disable-pip-version-check $(ORIG_PACKAGES) >>$$log 2>&1; then \
	  echo "$(ORIG_VENV): ready"; \
	else \
	  mkdir -p $(ORIG_VENV); \
	  { grep '^ERROR' $$log || grep . $$log || echo 'the install failed and printed nothing'; } \
	    | tail -n 1 > $(ORIG_VENV)/.unavailable; \
	  echo "$(ORIG_VENV): Scrapy Do 0.5.0 is unavailable, the migration tests will skip: $$(cat $(ORIG_VENV)/.unavailable)"; \
	fi; rm -f $$log; touch $@

install: $(VENV)/.installed
install-ray: $(RAY_VENV)/.installed
install-orig: $(ORIG_VENV)/.installed

## scrapyd beside the original 0.5.0, for bench/peers.py (the API's tail against its peers, in one run).
install-peers: $(ORIG_VENV)/.installed
	@[ -x $(PEERS_VENV)/bin/scrapyd ] || { $(PYTHON) -m venv $(PEERS_VENV) && \
	  $(PEERS_VENV)/bin/python -m pip install -q --disable-pip-version-check $(PEERS_PACKAGES); }
install-test: $(VENV)/.installed-test debs $(RAY_VENV)/.installed $(ORIG_VENV)/.installed

# Debian packages the tests need, as COMMAND:PACKAGE[,PACKAGE...]: the packages are installed only
# when the command is missing, with one `apt-get update` for all of them, as root or through sudo.
BROWSER_DEBS := chromium:chromium,chromium-driver
FAKETIME_DEBS := faketime:faketime
# Scrapy Do 0.5.0 unpacks archives with the unzip command.
ORIG_DEBS := unzip:unzip
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
	$(call apt-install,$(BROWSER_DEBS) $(FAKETIME_DEBS) $(ORIG_DEBS))

## Install and start the daemon in the foreground (store ./projects, http://127.0.0.1:7654/).
run: install
	$(VENV)/bin/scrapy-do $(if $(CONFIG),--config $(CONFIG))

## Install and run the whole test suite (crawls start warm, the default), then the tests of a crawl's life,
## and of the daemon's kill -9s and restarts, once more with every crawl started cold (warm-start = off; the
## whole suite passes that way too:
## `SCRAPY_DO_TEST_WARM_START=off .venv/bin/python -m pytest`).
COLD_TESTS = tests/integration/test_engine.py tests/integration/test_crawl_containment.py tests/integration/test_daemon.py
test: install-test
	$(PY) -m pytest
	SCRAPY_DO_TEST_WARM_START=off $(PY) -m pytest -q $(COLD_TESTS)

## Print the engine's and the API's speed figures (see bench/README.md).
bench: install-test
	$(PY) bench/dispatch.py
	$(PY) bench/api.py
	$(PY) bench/items.py

docs: install
	$(PY) -m pip install -q sphinx
	$(PY) -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(RAY_VENV) $(ORIG_VENV) $(PEERS_VENV) docs/_build build dist *.egg-info
