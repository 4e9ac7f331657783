# make demo: one narrated video end to end on the embedded defaults (no keys, no network)
# make test: the test suite
# Both create .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := data/demo

.PHONY: demo test bench install clean system-deps install-service

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

# make install-service (as root): the daemon as the systemd service config/video-scheduler.service.
# The code goes to /opt/video-scheduler, the path the unit names, not this checkout: a
# checkout under /home or /root is hidden from the service by ProtectHome=. It is a copy of
# this tree without .git, .venv and data, owned by root (the service only reads its code),
# with its own .venv built from SERVICE_PYTHON (a Python outside /home and /root, so the
# service user can run it). Then: the system user video-scheduler if missing,
# /etc/video-scheduler (the user's: its YouTube token files are refreshed in place) with
# scheduler.env from config/scheduler.env.example if absent (root's, 0600: systemd reads
# it), the unit in /etc/systemd/system, daemon-reload, enable --now (a running service is
# restarted onto the new code; KillMode=process lets a render in progress finish).
# Run again after a `git pull` to upgrade. The data dir is /var/lib/video-scheduler
# (StateDirectory=, made by systemd).
SERVICE_PREFIX ?= /opt/video-scheduler
SERVICE_USER := video-scheduler
SERVICE_PYTHON ?= /usr/bin/python3
SERVICE_CONF := /etc/video-scheduler
SERVICE_UNIT := /etc/systemd/system/video-scheduler.service

install-service:
	@[ "$$(id -u)" = 0 ] || { echo "install-service changes the system: run it as root (sudo make install-service)" >&2; exit 1; }
	@$(SERVICE_PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	id -u $(SERVICE_USER) >/dev/null 2>&1 || \
	  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(SERVICE_USER)
	install -d -m 0755 -o root -g root $(SERVICE_PREFIX)
	@if [ "$$(realpath .)" != "$$(realpath $(SERVICE_PREFIX))" ]; then \
	  echo "copying this checkout to $(SERVICE_PREFIX)"; \
	  tar -cf - --exclude=./.git --exclude=./.venv --exclude=./data --exclude='*.egg-info' \
	    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache . \
	  | tar -xf - -C $(SERVICE_PREFIX) --no-same-owner; \
	fi
	[ -x $(SERVICE_PREFIX)/.venv/bin/python ] || $(SERVICE_PYTHON) -m venv $(SERVICE_PREFIX)/.venv
	$(SERVICE_PREFIX)/.venv/bin/python -m pip install --quiet --upgrade pip
	$(SERVICE_PREFIX)/.venv/bin/python -m pip install --quiet -e $(SERVICE_PREFIX)
	install -d -m 0700 -o $(SERVICE_USER) -g $(SERVICE_USER) $(SERVICE_CONF)
	[ -e $(SERVICE_CONF)/scheduler.env ] || \
	  install -m 0600 -o root -g root config/scheduler.env.example $(SERVICE_CONF)/scheduler.env
	install -m 0644 -o root -g root config/video-scheduler.service $(SERVICE_UNIT)
	systemctl daemon-reload
	@was=$$(systemctl is-active video-scheduler || true); \
	  echo "systemctl enable --now video-scheduler"; systemctl enable --now video-scheduler; \
	  if [ "$$was" = active ]; then echo "systemctl restart video-scheduler"; systemctl restart video-scheduler; fi
	systemctl --no-pager status video-scheduler | head -n 5

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/bench_add_job.py
	$(PY) bench/bench_cold_start.py
	$(PY) bench/bench_dispatch_jitter.py
	$(PY) bench/bench_schedules.py
	$(PY) bench/render.py

clean:
	rm -rf $(VENV) $(DEMO_DIR)
