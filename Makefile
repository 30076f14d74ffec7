# Two commands: `make run` (the whole platform, embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
USER_VENV := .venv-user

.PHONY: run test lint format deps clean system-deps

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

run: deps system-deps
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py ensure_admin
	@echo ""
	@echo "  The hub is at $${HUB_PUBLIC_URL:-http://127.0.0.1:8000}/hub/  (Ctrl-C stops everything)"
	@echo ""
	$(VENV)/bin/honcho start

# bubblewrap isolates local servers (servers/spawners/isolation.py); installed
# when missing and we may (root), else the hub's system check names it.
system-deps:
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }

# Tests get a fresh data dir (homes, logs, the filesystem broker's queue).
test: deps system-deps
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
