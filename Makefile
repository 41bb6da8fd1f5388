# labtrack developer tasks. Every target creates what it needs; re-running is quick because the
# venvs are only (re)installed when pyproject.toml (or the pinned 2.x client) changes.
#
#   make run      install into .venv and start `labtrack server` (RUN_ARGS="--port 5001 ...")
#   make test     lint, unit + integration tests (sqlite and postgresql), the 2.x client suite,
#                 then the web UI's browser tests (headless /usr/bin/chromium)
#   make lint     ruff check + ruff format --check
#   make bench    bench/run.py (BENCH_ARGS="--quick")
#   make clean    remove venvs (incl. bench/.venvs) and caches; keeps labtrack-data/, bench/results/
#
# PYTEST_ARGS is passed to every pytest run, e.g. PYTEST_ARGS='-m "not postgres" -x'.
# LABTRACK_TEST_TARGET=mlflow runs the same suites against the stock `mlflow server`.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VENV2 := .venv-mlflow2
VPY2 := $(VENV2)/bin/python
# The 2.x client suite's venv: the last 2.x client (skinny: no server parts), plus what the
# sklearn/pyfunc model stories in tests/client2x need.
REQS2 := mlflow-skinny==2.22.5 'pandas<3' scikit-learn pytest pytest-timeout

# Stamps are keyed on content, not mtimes: a fresh clone or a `git checkout` re-installs only
# when the requirements really changed.
DEV_KEY := $(shell (cat pyproject.toml; echo) | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-dev-$(DEV_KEY)
STAMP2 := $(VENV2)/.installed-$(shell echo "$(REQS2)" | cksum | cut -d' ' -f1)

PYTEST_ARGS ?=
RUN_ARGS ?=
BENCH_ARGS ?=
LINT_PATHS := src tests bench

.PHONY: run test lint pytest client2x browser bench clean install install2

install: $(STAMP)
install2: $(STAMP2)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-dev-*
	touch $@

$(VPY2):
	$(PYTHON) -m venv $(VENV2)

$(STAMP2): | $(VPY2)
	$(VPY2) -m pip install --quiet --upgrade pip
	$(VPY2) -m pip install --quiet $(REQS2)
	rm -f $(VENV2)/.installed-*
	touch $@

run: $(STAMP)
	$(VENV)/bin/labtrack server $(RUN_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# Unit + integration tests (testpaths in pyproject.toml) with the main venv.
pytest: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

# The 2.x client suite runs in its own venv; the server runs with the main venv's python.
# --confcutdir keeps tests/conftest.py (which needs the main venv) out of it.
client2x: $(STAMP) $(STAMP2)
	LABTRACK_SERVER_PYTHON="$(CURDIR)/$(VPY)" $(VPY2) -m pytest tests/client2x \
		--confcutdir=tests/client2x -p no:cacheprovider $(PYTEST_ARGS)

# The web UI in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser
# download): a separate run because tests/browser is not in the default testpaths.
browser: $(STAMP)
	$(VPY) -m pytest tests/browser -p no:cacheprovider $(PYTEST_ARGS)

# Lint first; then every test suite runs even if an earlier one fails, and the exit code
# reports any failure.
test: $(STAMP) $(STAMP2)
	$(MAKE) --no-print-directory lint
	@rc=0; \
	$(MAKE) --no-print-directory pytest || rc=$$?; \
	$(MAKE) --no-print-directory client2x || rc=$$?; \
	$(MAKE) --no-print-directory browser || rc=$$?; \
	exit $$rc

bench: $(STAMP)
	$(VPY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV2) bench/.venvs build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
