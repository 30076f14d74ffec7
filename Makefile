# Two commands: `make run` (the whole platform, embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
USER_VENV := .venv-user

.PHONY: run test lint format deps system-deps test-deps clean

deps: system-deps $(VENV)/.installed $(USER_VENV)/.installed

# Debian packages: python-ldap builds against libldap2-dev/libsasl2-dev; the
# LDAP tests run Debian's slapd. Installed when missing (as root), else named.
SYSTEM_PACKAGES := slapd ldap-utils libldap2-dev libsasl2-dev
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages: $$missing (sudo apt-get install $$missing)"; exit 1; fi; \
	fi

# The sign-in tests' OpenID Connect provider (npm oidc-provider, pinned by its lock file)
OIDC_DIR := tests/services/oidc
test-deps: $(OIDC_DIR)/node_modules/.installed
$(OIDC_DIR)/node_modules/.installed: $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

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
	$(VENV)/bin/honcho start

# Tests get a fresh data dir (homes, logs, the filesystem broker's queue).
test: deps test-deps
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
