"""Caseloop settings: one module, driven by environment variables.

Embedded default (no variables set): SQLite under ``var/``, Celery tasks run eagerly in-process,
artifacts under ``var/artifacts``. Production and CI set ``DATABASE_URL`` (PostgreSQL) and
``CELERY_BROKER_URL`` (Redis); tasks then go to real workers on the queues ``decisions``,
``training`` and ``default``.
"""

from __future__ import annotations

import re  # REST API: validates API_RATE_LIMIT
import sys  # operations: tells the test profile apart (see the operations block)
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from caseloop.env import env_bool, env_broker, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CASELOOP_VAR_DIR", str(BASE_DIR / "var")))

# Embedded means no external database: the quickstart and local development.
EMBEDDED = not env_str("DATABASE_URL", "")
DEBUG = env_bool("DEBUG", EMBEDDED)
_DEV_SECRET = "caseloop-insecure-development-key-change-me-0123456789abcdef"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET if EMBEDDED or DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set and DEBUG is off.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "caseloop.accounts",
    "caseloop.audit",
    "caseloop.webhooks",
    "workflows",
    "training",
]
# --- REST API apps (caseloop.api): schema, local Swagger UI/ReDoc files, idempotency keys ---
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar", "caseloop.api"]
# --- end REST API apps ---

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "caseloop.accounts.middleware.OrganizationMiddleware",
]

ROOT_URLCONF = "caseloop.urls"
WSGI_APPLICATION = "caseloop.wsgi.application"
ASGI_APPLICATION = "caseloop.asgi.application"

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
                "caseloop.accounts.context_processors.membership",
                "caseloop.navigation.navigation",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'caseloop.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several threads (dev server, eager tasks) share one file: wait for the lock instead of failing.
    # IMMEDIATE takes the write lock at BEGIN, so the audit chain's read-then-append cannot race.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

ARTIFACT_DIR = Path(env_str("ARTIFACT_DIR", str(VAR_DIR / "artifacts")))

# Celery. Without a broker URL the embedded default runs tasks eagerly in-process.
CELERY_BROKER_URL = env_broker("CELERY_BROKER_URL", "memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL == "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=1)
CELERY_BEAT_SCHEDULE = {
    # A training job whose worker died is re-queued and resumes from its last checkpoint.
    "requeue-stale-training-jobs": {"task": "training.tasks.requeue_stale_training_jobs", "schedule": 60.0},
}

# --- REST API (caseloop.api): DRF, OpenAPI schema, throttling cache, request size ---
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "3000/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|min|minute|h|hour|d|day)", API_RATE_LIMIT):
    raise ImproperlyConfigured(f"API_RATE_LIMIT={API_RATE_LIMIT!r} is not a rate like 3000/min or 50/s.")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "caseloop.api.auth.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["caseloop.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "caseloop.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["caseloop.api.throttling.CredentialRateThrottle"],
    # Requests per credential (API key or signed-in user) per window: "<n>/<s|min|hour|day>".
    "DEFAULT_THROTTLE_RATES": {"credential": API_RATE_LIMIT},
    "NON_FIELD_ERRORS_KEY": "non_field_errors",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Caseloop API",
    "DESCRIPTION": "Workflows, rubrics, cases, decisions, reviews, policies, training, audit and webhooks. "
    "See docs/api.md.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from static files, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "caseloop.api.schema.add_error_responses",
    ],
}
# The throttle counters live in this cache: Redis when there is one, process memory when embedded.
REDIS_URL = env_str("REDIS_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Deployments (and test databases) sharing one Redis keep their counters apart.
            "KEY_PREFIX": f"caseloop:{DATABASES['default']['NAME']}",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "caseloop"}
    )
}
# Larger bodies are answered 413; a bulk of 1,000 cases fits well within it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)
# --- end REST API ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- webhooks (caseloop.webhooks): delivery timeout, retries with back-off, disabling, log retention ---
WEBHOOK_TIMEOUT_S = env_int("WEBHOOK_TIMEOUT_S", 10, minimum=1)  # connect, write and read, each
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)  # per delivery, the first included
WEBHOOK_RETRY_BASE_S = env_int("WEBHOOK_RETRY_BASE_S", 10)  # waits: base, 2·base, 4·base …
WEBHOOK_RETRY_MAX_S = env_int("WEBHOOK_RETRY_MAX_S", 3600, minimum=1)  # … capped here
# Deliveries in a row whose every attempt failed before the webhook is disabled (the admin sees why).
WEBHOOK_DISABLE_AFTER = env_int("WEBHOOK_DISABLE_AFTER", 10, minimum=1)
# Off in production: refuse URLs that are, or resolve to, private/loopback/link-local addresses.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", EMBEDDED or DEBUG)
WEBHOOK_LOG_RETENTION_DAYS = env_int("WEBHOOK_LOG_RETENTION_DAYS", 30, minimum=1)
CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"] = {
    "task": "caseloop.webhooks.tasks.sweep_webhook_deliveries",
    "schedule": 60.0,
}
# --- end webhooks ---

# --- operations (deploy/README.md): production security, static files, request ids, JSON logs ---
# The test suite runs with DEBUG off against PostgreSQL; it keeps plain HTTP and unhashed static names.
TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]
_PRODUCTION = not DEBUG and not TESTING
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _PRODUCTION)
# Probes and scrapers inside the cluster speak plain HTTP to the pod.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a TLS-terminating proxy that sets X-Forwarded-Proto itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    if not SECURE_SSL_REDIRECT:  # that proxy redirects HTTP to HTTPS, so Django need not
        SILENCED_SYSTEM_CHECKS = ["security.W008"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", _PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
for _origin in CSRF_TRUSTED_ORIGINS:
    _scheme, _, _host = _origin.partition("://")
    if _scheme not in ("http", "https") or not _host or "/" in _host:
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS: {_origin!r} is not an origin like https://caseloop.example.com."
        )

# Static files: WhiteNoise right after SecurityMiddleware; hashed, compressed names in production
# (collectstatic at image build), plain storage and files straight from the finders in tests and dev.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(STATIC_ROOT)))
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = not _PRODUCTION

# Readiness (/readyz, python -m caseloop.health): vLLM is checked only where VLLM_URL is set.
VLLM_URL = env_str("VLLM_URL", "").strip()
READYZ_TIMEOUT = env_int("READYZ_TIMEOUT", 2, minimum=1)  # seconds per dependency check

# Request ids and logs (caseloop/observability.py): the id is set first thing in every request, and
# every log line (web and workers) is one JSON object carrying it; LOG_FORMAT=text for people.
MIDDLEWARE.insert(0, "caseloop.observability.RequestIdMiddleware")
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "caseloop.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "caseloop.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # A worker's -l sets the root level for Celery's own lines; Caseloop's follow LOG_LEVEL regardless.
    "loggers": {"caseloop": {"level": env_str("LOG_LEVEL", "INFO")}},
}
LOGGING_CONFIG = "caseloop.observability.configure_logging"  # dictConfig, and warnings as log lines
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING above, in the same format
# A task taken by a worker that died (acks_late) goes back to its queue after this many seconds.
# Keep it above the longest decision (300 s limit); a training task redelivered early finds its job
# claimed and stops (training jobs resume through beat's heartbeat check instead).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
}
# Persistent database connections are checked before a request or task reuses them, so a restarted
# PostgreSQL costs no request an error on a connection that died with it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Prometheus metrics (caseloop/metrics.py) at /metrics: latency of every request (the middleware runs
# right inside RequestIdMiddleware); with METRICS_TOKEN set, scrapers send it as a bearer token.
MIDDLEWARE.insert(
    MIDDLEWARE.index("caseloop.observability.RequestIdMiddleware") + 1,
    "caseloop.metrics.RequestMetricsMiddleware",
)
METRICS_TOKEN = env_str("METRICS_TOKEN", "").strip()

# Sign-in rate limit (caseloop/accounts/ratelimit.py): failures per username and client address per
# window, counted in the cache. Behind a proxy that appends the client to X-Forwarded-For, trust it.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 300, minimum=1)  # seconds
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)
# --- end operations ---

# --- language-model policies (training/rl/lm, docs/lm-policies.md) ---
# Live cases of a language-model version are decided by its vLLM server at VLLM_URL (above; when
# unset, http://127.0.0.1:8100, serve_policy's default port). Each request times out after
# LM_SERVER_TIMEOUT seconds and is tried LM_SERVER_RETRIES times; then the case waits for the model
# and beat queues it again once the server answers. A model line is at most LM_MAX_TOKENS tokens.
LM_SERVER_TIMEOUT = env_int("LM_SERVER_TIMEOUT", 10, minimum=1)
LM_SERVER_RETRIES = env_int("LM_SERVER_RETRIES", 3, minimum=1)
LM_MAX_TOKENS = env_int("LM_MAX_TOKENS", 192, minimum=4)
CELERY_BEAT_SCHEDULE["requeue-cases-waiting-for-model"] = {
    "task": "workflows.tasks.requeue_waiting_cases",
    "schedule": 30.0,
}
# A live case whose decide task was lost (broker restarted between commit and publish) is queued again.
CELERY_BEAT_SCHEDULE["requeue-lost-cases"] = {"task": "workflows.tasks.requeue_lost_cases", "schedule": 60.0}
# --- end language-model policies ---
