"""The one settings module. With no environment at all it runs the embedded
default (SQLite, filesystem broker, local processes); production is the same
file with HUB_* variables set. See the configuration table in README.md."""

from __future__ import annotations

import os
from pathlib import Path

from hubsite import signin
from hubsite.env import (
    env_bool,
    env_choice,
    env_dns_name,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_networks,
    env_secret,
    env_str,
    parse_database_url,
    persisted_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
HUB_DATA_DIR = Path(env_str("HUB_DATA_DIR", str(BASE_DIR / "data"))).resolve()
HUB_DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("HUB_DEBUG", False)
SECRET_KEY = env_secret("HUB_SECRET_KEY") or persisted_secret(HUB_DATA_DIR / "secret_key")

# --- where things listen ------------------------------------------------------
HUB_PUBLIC_URL = env_str("HUB_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
HUB_BIND_URL = env_str("HUB_BIND_URL", "http://127.0.0.1:8081").rstrip("/")
# how single-user servers and the router reach the hub's API
HUB_CONNECT_URL = env_str("HUB_CONNECT_URL", HUB_BIND_URL).rstrip("/")
HUB_API_URL = HUB_CONNECT_URL + "/hub/api"
# per-user hosts, JupyterHub's subdomain_host: <name>.<this> serves /user/<name>/
# (servers/hosts.py); the router reads the same variable; "" = off
HUB_SUBDOMAIN_HOST = env_dns_name("HUB_SUBDOMAIN_HOST")
HUB_ROUTER_TOKEN = env_secret("HUB_ROUTER_TOKEN") or persisted_secret(HUB_DATA_DIR / "router_token")

ALLOWED_HOSTS = env_list("HUB_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("HUB_CSRF_TRUSTED_ORIGINS", [HUB_PUBLIC_URL])
USE_X_FORWARDED_HOST = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "hubsite.apps.HubsiteConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "allauth",
    "allauth.account",
    "accounts",
    "servers",
    "routing",
    "scheduler",
]

MIDDLEWARE = [
    "servers.metrics.RequestMetricsMiddleware",
    "hubsite.middleware.HubHeadersMiddleware",
    "hubsite.middleware.HubHostOnlyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "hubsite.urls"
WSGI_APPLICATION = "hubsite.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
# a secret (it holds the password): HUB_DATABASE_URL_FILE works too (k8s Secrets)
_db_url = env_secret("HUB_DATABASE_URL")
if _db_url:
    DATABASES = {"default": parse_database_url(_db_url)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
        import pymysql

        pymysql.install_as_MySQLdb()
else:
    DATABASES = {
        "default": {
            # Django's, with one writer per process at a time (hubsite/sqlite/base.py)
            "ENGINE": "hubsite.sqlite",
            "NAME": str(HUB_DATA_DIR / "hub.sqlite3"),
            # hub, worker and beat write concurrently: wait instead of failing
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # a file, not Django's shared in-memory default: the live hub, the
            # Celery worker and the test then wait for each other's locks
            # instead of failing with "database table is locked"
            "TEST": {"NAME": str(HUB_DATA_DIR / "test.sqlite3")},
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = env_int("HUB_DB_CONN_MAX_AGE", 60, minimum=0)
# a kept connection is checked (SELECT 1) before its first use in a request or
# task: the first one after a database restart reconnects instead of failing
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- cookies: the hub owns /hub/ only, user servers own /user/<name>/ ---------
SESSION_COOKIE_NAME = "jupyterhub-hub-login"
SESSION_COOKIE_PATH = "/hub/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HUB_PUBLIC_URL.startswith("https://")
SESSION_COOKIE_AGE = env_int("HUB_COOKIE_MAX_AGE_DAYS", 14, minimum=1) * 86400
CSRF_COOKIE_NAME = "_xsrf_hub"
CSRF_COOKIE_PATH = "/hub/"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# host-only (no Domain attribute): with HUB_SUBDOMAIN_HOST, users' servers live
# on sibling hosts and must never receive the hub's cookies (hubsite.E001)
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
# flash messages live in the session: Django's cookie storage sets Path=/, which
# would reach every user's server under /user/ (issue 8 finding 9)
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "/hub/login"
LOGIN_REDIRECT_URL = "/hub/home"
LOGOUT_REDIRECT_URL = "/hub/login"

# --- allauth: local accounts with admin approval ------------------------------
HUB_SIGNUP_REQUIRES_APPROVAL = env_bool("HUB_SIGNUP_REQUIRES_APPROVAL", True)
ACCOUNT_ADAPTER = "accounts.adapters.HubAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_USERNAME_MIN_LENGTH = 1
ACCOUNT_USERNAME_VALIDATORS = "accounts.validators.username_validators"
ACCOUNT_SESSION_REMEMBER = True

# --- sign-in: client identity and limits (accounts/client_address.py) ---------
# X-Forwarded-For is believed only from these (the router; a load balancer)
HUB_TRUSTED_PROXIES = env_networks("HUB_TRUSTED_PROXIES", ["127.0.0.0/8", "::1"])
HUB_LOGIN_FAILURES_PER_CLIENT = env_int("HUB_LOGIN_FAILURES_PER_CLIENT", 10, minimum=1)
HUB_LOGIN_FAILURES_PER_ACCOUNT = env_int("HUB_LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
HUB_LOGIN_LOCKOUT_SECONDS = env_int("HUB_LOGIN_LOCKOUT_SECONDS", 300, minimum=1)
ACCOUNT_RATE_LIMITS = {
    # per real client per minute, and per account name (locked for the window)
    "login_failed": f"{HUB_LOGIN_FAILURES_PER_CLIENT}/m/ip,"
    f"{HUB_LOGIN_FAILURES_PER_ACCOUNT}/{HUB_LOGIN_LOCKOUT_SECONDS}s/key",
}
# who may sign in, whatever the method (accounts/policy.py); unset = no list
HUB_ALLOWED_USERS = signin.allow_list("HUB_ALLOWED_USERS")
HUB_ALLOWED_GROUPS = signin.allow_list("HUB_ALLOWED_GROUPS")
HUB_BLOCKED_USERS = env_list("HUB_BLOCKED_USERS")
HUB_ADMIN_USERS = env_list("HUB_ADMIN_USERS")
# a user the policy no longer lets in also loses their running servers
HUB_STOP_SERVERS_WHEN_REFUSED = env_bool("HUB_STOP_SERVERS_WHEN_REFUSED", False)
# crypt key of JupyterHub's auth_state (upstream tokens, kept per user)
HUB_AUTH_STATE = env_bool("HUB_AUTH_STATE", False)
HUB_CRYPT_KEY = env_secret("HUB_CRYPT_KEY")
HUB_AUTH_STATE_ENV = env_str("HUB_AUTH_STATE_ENV", "UPSTREAM_ACCESS_TOKEN")
signin.check_auth_state(HUB_AUTH_STATE, HUB_CRYPT_KEY)
# sign-in methods (hubsite/signin.py turns HUB_LDAP_* etc. into library settings)
globals().update(signin.ldap_settings())
if env_str("HUB_LDAP_URI"):
    AUTHENTICATION_BACKENDS.append(signin.LDAP_BACKEND)
# OpenID Connect and Google (allauth's openid_connect provider), GitHub
INSTALLED_APPS += [
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.github",
]
HUB_SOCIAL_PROVIDERS = signin.social_providers()
SOCIALACCOUNT_PROVIDERS = signin.socialaccount_settings(HUB_SOCIAL_PROVIDERS)
SOCIALACCOUNT_ADAPTER = "accounts.adapters.HubSocialAccountAdapter"
SOCIALACCOUNT_LOGIN_ON_GET = True  # /hub/oauth_login starts the flow, as OAuthenticator
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # an e-mail address never selects an account
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False  # upstream tokens only in the encrypted auth_state
HUB_AUTO_LOGIN = env_bool("HUB_AUTO_LOGIN", False)
HUB_SIGNUP_OPEN = signin.sign_up_open(bool(HUB_SOCIAL_PROVIDERS or env_str("HUB_LDAP_URI")))
# optional second factor for hub passwords: TOTP apps, with recovery codes
INSTALLED_APPS += ["allauth.mfa"]
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("HUB_MFA_ISSUER", "Jupyter Hub")
# mail (HUB_SMTP_*): password reset, and e-mail verification at sign-up
globals().update(signin.mail_settings())
# allauth counts in the default cache: shared by every hub process and kept
# across restarts (Redis, else a table made by hubsite's migration)
if env_str("HUB_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("HUB_REDIS_URL"),
            "KEY_PREFIX": "hub",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "hub_cache",
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/hub/static/"
STATIC_ROOT = HUB_DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("HUB_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.HubTokenAuthentication",
        "accounts.api.authentication.HubSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api.inputs.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "accounts.api.errors.hub_exception_handler",
    # our OpenAPI description (drf-spectacular), which tests/hubsite/test_api_schema.py fuzzes
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# the file rewritten on every route change, which routers on this machine watch
# (routing/router/wakefile.py: a wake channel without Redis); "" = none written
HUB_ROUTE_WAKE_FILE = env_str("HUB_ROUTE_WAKE_FILE", str(HUB_DATA_DIR / "run" / "routes-changed"))
# touched after each commit that wrote server events; stream servers on this
# machine watch its folder, which holds nothing else (servers/eventwake.py);
# "" = off
HUB_EVENT_WAKE_FILE = env_str(
    "HUB_EVENT_WAKE_FILE", str(HUB_DATA_DIR / "run" / "events" / "written")
)

# --- Celery -------------------------------------------------------------------
HUB_REDIS_URL = env_str("HUB_REDIS_URL")
if HUB_REDIS_URL:
    CELERY_BROKER_URL = HUB_REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    _broker = HUB_DATA_DIR / "broker"
    for _sub in ("in", "processed", "control", "unacked"):
        (_broker / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # kombu's transport with atomic publishing (see hubsite/broker.py for the race)
    CELERY_BROKER_TRANSPORT = "hubsite.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "in"),
        "data_folder_out": str(_broker / "in"),
        "processed_folder": str(_broker / "processed"),
        "control_folder": str(_broker / "control"),
        "store_processed": False,
        # how often the worker looks for new tasks: half of it is added to
        # every spawn on average (bench/spawn.py); an idle poll is one listdir
        "polling_interval": 0.05,
        # taken, not yet acked (hubsite/broker.py): back in the queue once the
        # taker is dead, or after this long if it is alive but silent
        "unacked_folder": str(_broker / "unacked"),
        "visibility_timeout": 3600,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes the task's database connection before and after
# every task (a new connection per spawn or stop: ~5% of the worker's CPU on
# SQLite, more on PostgreSQL); tasks keep it under the web requests' rules
# instead (hubsite/celery.py)
CELERY_DB_REUSE_MAX = 2**62

# --- spawning -----------------------------------------------------------------
HUB_SPAWNER = env_choice("HUB_SPAWNER", "local", ("local", "kubernetes"))
HUB_START_TIMEOUT = env_float("HUB_START_TIMEOUT", 120.0, minimum=1.0)
HUB_STOP_GRACE = env_float("HUB_STOP_GRACE", 10.0, minimum=0.0)
HUB_CONCURRENT_SPAWN_LIMIT = env_int("HUB_CONCURRENT_SPAWN_LIMIT", 100, minimum=0)
HUB_NAMED_SERVER_LIMIT = env_int("HUB_NAMED_SERVER_LIMIT", 5, minimum=0)
HUB_ALLOW_NAMED_SERVERS = env_bool("HUB_ALLOW_NAMED_SERVERS", True)
HUB_DEFAULT_USER_ENV = env_str("HUB_DEFAULT_USER_ENV", str(BASE_DIR / ".venv-user"))
HUB_HOMES_DIR = Path(env_str("HUB_HOMES_DIR", str(HUB_DATA_DIR / "homes"))).resolve()
# fork local servers from a per-environment process with the server's modules
# already imported (servers/spawners/zygote.py); false = exec every server
HUB_LOCAL_PREFORK = env_bool("HUB_LOCAL_PREFORK", True)
# local servers kept from the hub's data and each other (servers/spawners/isolation.py):
# auto = own system account per user as root, bubblewrap sandbox otherwise
HUB_LOCAL_ISOLATION = env_choice(
    "HUB_LOCAL_ISOLATION", "auto", ("auto", "users", "sandbox", "none")
)
HUB_LOCAL_ACCOUNT_PREFIX = env_str("HUB_LOCAL_ACCOUNT_PREFIX", "hub-")
HUB_DEFAULT_URL = env_str("HUB_DEFAULT_URL", "/lab")
HUB_ACTIVITY_INTERVAL = env_int("HUB_ACTIVITY_INTERVAL", 300, minimum=1)

# --- Kubernetes spawner (HUB_SPAWNER=kubernetes; servers/spawners/kubernetes.py) ----
# the cluster: this kubeconfig file, else the pod's service account (in-cluster)
HUB_K8S_KUBECONFIG = env_str("HUB_K8S_KUBECONFIG", env_str("KUBECONFIG"))
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
HUB_K8S_NAMESPACE = env_str(
    "HUB_K8S_NAMESPACE", _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.exists() else ""
)
# label value telling this hub's pods from another hub's in the same namespace
HUB_K8S_INSTANCE = env_str("HUB_K8S_INSTANCE", "hub")
HUB_K8S_IMAGE = env_str("HUB_K8S_IMAGE", "quay.io/jupyter/base-notebook:latest")
HUB_K8S_IMAGE_PULL_POLICY = env_choice(
    "HUB_K8S_IMAGE_PULL_POLICY", "IfNotPresent", ("IfNotPresent", "Always", "Never")
)
HUB_K8S_IMAGE_PULL_SECRETS = env_list("HUB_K8S_IMAGE_PULL_SECRETS")
HUB_K8S_STORAGE_CLASS = env_str("HUB_K8S_STORAGE_CLASS")  # "": the cluster's default
HUB_K8S_STORAGE_CAPACITY = env_str("HUB_K8S_STORAGE_CAPACITY", "10Gi")
HUB_K8S_STORAGE_ACCESS_MODES = env_list("HUB_K8S_STORAGE_ACCESS_MODES", ["ReadWriteOnce"])
# what happens to a user's claim (their files) when the user is deleted
HUB_K8S_PVC_ON_USER_DELETE = env_choice("HUB_K8S_PVC_ON_USER_DELETE", "keep", ("keep", "delete"))
# base layer under every profile: KubeSpawner keys, e.g. {"node_selector": {...}}
HUB_K8S_SPAWNER_DEFAULTS = env_json_object("HUB_K8S_SPAWNER_DEFAULTS")
# --- culling and reconcile (scheduler/culling.py, scheduler/reconcile.py) ------
# HUB_CULL_TIMEOUT unset: no idle culling (profiles may still set their own)
HUB_CULL_TIMEOUT = (
    env_float("HUB_CULL_TIMEOUT", 0.0, minimum=1.0) if env_str("HUB_CULL_TIMEOUT") else None
)
HUB_CULL_EVERY = env_float("HUB_CULL_EVERY", 60.0, minimum=1.0)
HUB_CULL_MAX_AGE = env_float("HUB_CULL_MAX_AGE", 0.0)
HUB_CULL_USERS = env_bool("HUB_CULL_USERS", False)
HUB_CULL_ADMINS = env_bool("HUB_CULL_ADMINS", True)  # jupyterhub-idle-culler's default
HUB_CULL_REMOVE_NAMED_SERVERS = env_bool("HUB_CULL_REMOVE_NAMED_SERVERS", False)
HUB_CULL_CONCURRENCY = env_int("HUB_CULL_CONCURRENCY", 10, minimum=1)
HUB_CULL_TERMINALS = env_bool("HUB_CULL_TERMINALS", True)  # terminal activity counts
HUB_RECONCILE_EVERY = env_float("HUB_RECONCILE_EVERY", 10.0, minimum=1.0)
# a spawn's worker renews its lease on the server row every HUB_SPAWN_LEASE/5 s;
# a lease older than this means the worker died and the start is taken over
HUB_SPAWN_LEASE = env_float("HUB_SPAWN_LEASE", 10.0, minimum=1.0)

# --- metrics (servers/metrics.py) ------------------------------------------------
# every process (gunicorn workers, Celery workers, beat) writes its metric values
# here; /hub/metrics sums them (prometheus-client's multiprocess mode)
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(HUB_DATA_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
HUB_AUTHENTICATE_PROMETHEUS = env_bool("HUB_AUTHENTICATE_PROMETHEUS", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("HUB_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # Django also logs every 4xx as a WARNING line; the access log of gunicorn
        # (and uvicorn) already has each request with its status, and a server
        # that is still starting is polled through the hub (404/424) many times
        # a second: that second line cost the hub and the supervisor ~10% of the
        # CPU of a start+stop (bench/spawn.py). 5xx are still logged with tracebacks.
        "django.request": {"level": "ERROR"},
    },
}
