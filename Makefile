# make demo: one narrated video end to end on the embedded defaults (no keys, no network)
# make test: the test suite
# Both create .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := data/demo

.PHONY: demo test bench install clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) run_scheduler.py demo --dir $(DEMO_DIR)

# espeak-ng (Debian) is optional for the product, but the tests exercise it: install it here;
# chromium too, which tests/scheduler/test_status_page.py drives (never `playwright install`).
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing espeak-ng (Debian package) for the tests"; \
	  $$SUDO apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q espeak-ng >/dev/null; }; }
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing chromium (Debian package) for the status page's browser test"; \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/bench_add_job.py
	$(PY) bench/bench_cold_start.py
	$(PY) bench/bench_dispatch_jitter.py
	$(PY) bench/render.py

clean:
	rm -rf $(VENV) $(DEMO_DIR)
