# Two commands: `make run` (the whole platform, embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
USER_VENV := .venv-user
KUBESPAWNER_VENV := .venv-kubespawner

.PHONY: run run-ha run-k8s test lint format deps clean manage system-deps ldap-deps test-deps

deps: ldap-deps $(VENV)/.installed $(USER_VENV)/.installed $(KUBESPAWNER_VENV)/.installed

# Debian packages: python-ldap builds against libldap2-dev/libsasl2-dev; the
# LDAP tests run Debian's slapd. Installed when missing (as root), else named.
LDAP_PACKAGES := slapd ldap-utils libldap2-dev libsasl2-dev
ldap-deps:
	@missing=$$(for p in $(LDAP_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages: $$missing (sudo apt-get install $$missing)"; exit 1; fi; \
	fi

# The sign-in tests' OpenID Connect provider (npm oidc-provider, pinned by its lock file)
OIDC_DIR := tests/services/oidc
test-deps: $(OIDC_DIR)/node_modules/.installed
$(OIDC_DIR)/node_modules/.installed: $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json | system-deps
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

# The Kubernetes API simulator's fidelity check: the real JupyterHub + KubeSpawner, with
# configurable-http-proxy from npm as JupyterHub's proxy (needs node + npm).
$(KUBESPAWNER_VENV)/.installed: requirements-kubespawner.txt | system-deps
	test -x $(KUBESPAWNER_VENV)/bin/python || $(PYTHON) -m venv $(KUBESPAWNER_VENV)
	$(KUBESPAWNER_VENV)/bin/pip install --quiet --upgrade pip
	$(KUBESPAWNER_VENV)/bin/pip install --quiet -r requirements-kubespawner.txt
	npm install --silent --no-audit --no-fund --prefix $(KUBESPAWNER_VENV)/chp configurable-http-proxy@5.3.0
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
SYSTEM_NEEDS := chromium:chromium chromedriver:chromium-driver npm:npm bwrap:bubblewrap
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

# `make run` with every component twice (Procfile.ha): two hubs, two stream
# servers, two routers sharing the public port, two Celery workers, one beat, on
# one database. User servers reach the hubs through the routers' port, the one
# address that outlives any hub. Best on PostgreSQL and Redis (HUB_DATABASE_URL,
# HUB_REDIS_URL); the embedded defaults work too.
run-ha: deps
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py ensure_admin
	@echo ""
	@echo "  The hub is at $${HUB_PUBLIC_URL:-http://127.0.0.1:8000}/hub/  (2 hubs, 2 routers, 2 workers; Ctrl-C stops everything)"
	@echo ""
	HUB_CONNECT_URL=$${HUB_CONNECT_URL:-http://$${HUB_ROUTER_LISTEN:-127.0.0.1:8000}} \
	$(VENV)/bin/python -m hubsite.supervisor --procfile Procfile.ha

# `make run` on "Kubernetes": the API simulator (k8s_simulator/, a simulator, not
# a cluster) plays the cluster, and servers are pods (HUB_SPAWNER=kubernetes).
K8S_SIM_DIR = $${HUB_DATA_DIR:-data}/k8s-simulator
run-k8s: deps
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py ensure_admin
	@mkdir -p "$(K8S_SIM_DIR)" && rm -f "$(K8S_SIM_DIR)/kubeconfig"; \
	$(VENV)/bin/python -m k8s_simulator --kubeconfig "$(K8S_SIM_DIR)/kubeconfig" \
		--state-dir "$(K8S_SIM_DIR)/state" >"$(K8S_SIM_DIR)/simulator.log" 2>&1 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; wait $$sim' EXIT INT TERM; \
	timeout 60 sh -c 'until [ -s "$$0" ]; do sleep 0.1; done' "$(K8S_SIM_DIR)/kubeconfig" \
		|| { echo "the simulator did not start: see $(K8S_SIM_DIR)/simulator.log"; exit 1; }; \
	echo ""; \
	echo "  The hub is at $${HUB_PUBLIC_URL:-http://127.0.0.1:8000}/hub/  (servers are pods on the simulator; Ctrl-C stops everything)"; \
	echo ""; \
	HUB_SPAWNER=kubernetes HUB_K8S_KUBECONFIG="$(K8S_SIM_DIR)/kubeconfig" \
	HUB_K8S_NAMESPACE=$${HUB_K8S_NAMESPACE:-default} $(VENV)/bin/python -m hubsite.supervisor

# The real jupyterhub-idle-culler, run against our hub by tests/scheduler/test_external_culler.py
CULLER_VENV := .venv-culler
$(CULLER_VENV)/.installed: requirements-culler.txt
	test -x $(CULLER_VENV)/bin/python || $(PYTHON) -m venv $(CULLER_VENV)
	$(CULLER_VENV)/bin/pip install --quiet -r requirements-culler.txt
	touch $@

# Tests get a fresh data dir (homes, logs, the filesystem broker's queue), and
# run on TEST_WORKERS pytest-xdist workers (each with a data dir and Redis
# database of its own: tests/xdist_env.py, and a Kubernetes simulator network
# of its own: tests/k8s.py); TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= 2
test: deps system-deps test-deps $(CULLER_VENV)/.installed
	rm -rf .test-data
	HUB_DATA_DIR=$(CURDIR)/.test-data $(VENV)/bin/python -m pytest \
		-n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python manage.py makemigrations --check --dry-run

format: deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(USER_VENV) $(KUBESPAWNER_VENV)
