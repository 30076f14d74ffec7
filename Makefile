# Two commands: `make run` (the whole platform, embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
USER_VENV := .venv-user

.PHONY: run test lint format deps clean manage system-deps

deps: $(VENV)/.installed $(USER_VENV)/.installed

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# The default user environment: jupyterhub-singleuser + JupyterLab, kept apart
# from the hub's venv (mitmproxy pins an older tornado than jupyter-server needs).
$(USER_VENV)/.installed: requirements-user.txt
	test -x $(USER_VENV)/bin/python || $(PYTHON) -m venv $(USER_VENV)
	$(USER_VENV)/bin/pip install --quiet --upgrade pip
	$(USER_VENV)/bin/pip install --quiet -r requirements-user.txt
	touch $@

run: deps
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py ensure_admin
	@echo ""
	@echo "  The hub is at $${HUB_PUBLIC_URL:-http://127.0.0.1:8000}/hub/  (Ctrl-C stops everything)"
	@echo ""
	$(VENV)/bin/python -m hubsite.supervisor

# `make manage ARGS="create_token alice"`: manage.py with the hub's venv.
manage: deps
	@$(VENV)/bin/python manage.py $(ARGS)

# What the tests need from Debian, as COMMAND:PACKAGE; installed with apt-get
# (as root, else through sudo) only when a command is missing.
SYSTEM_NEEDS := chromium:chromium chromedriver:chromium-driver
# the fault tests run a redis-server and a PostgreSQL cluster of their own
SYSTEM_NEEDS += redis-server:redis-server psql:postgresql
system-deps:
	@missing=""; for need in $(SYSTEM_NEEDS); do \
	  command -v "$${need%%:*}" >/dev/null 2>&1 || missing="$$missing $${need#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing$$missing (apt-get) for the tests"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The real jupyterhub-idle-culler, run against our hub by tests/scheduler/test_external_culler.py
CULLER_VENV := .venv-culler
$(CULLER_VENV)/.installed: requirements-culler.txt
	test -x $(CULLER_VENV)/bin/python || $(PYTHON) -m venv $(CULLER_VENV)
	$(CULLER_VENV)/bin/pip install --quiet -r requirements-culler.txt
	touch $@

# Tests get a fresh data dir (homes, logs, the filesystem broker's queue).
test: deps system-deps $(CULLER_VENV)/.installed
	rm -rf .test-data
	HUB_DATA_DIR=$(CURDIR)/.test-data $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python manage.py makemigrations --check --dry-run

format: deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(USER_VENV)
