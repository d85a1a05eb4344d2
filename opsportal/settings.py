"""Settings for opsportal, read from the environment only (12-factor).

Every variable is documented in docs/configuration.md. Without DATABASE_URL the portal runs on
SQLite, without REDIS_URL Celery uses kombu's filesystem transport, so `make run` needs no server.
"""

import os
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OPSPORTAL_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else [])
# Commands that only read the code (never serve, never use the key) run without the secrets,
# so `manage.py makemigrations --check` works on a bare checkout.
CODE_ONLY_COMMAND = sys.argv[1:2] == ["makemigrations"] and sys.argv[0].endswith("manage.py")
if not DEBUG and not CODE_ONLY_COMMAND:
    missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not env.str(name, default="")]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off: set {' and '.join(missing)} (see docs/configuration.md)."
        )
if not SECRET_KEY:
    SECRET_KEY = "insecure-dev-only-key-never-used-when-DEBUG-is-off"  # noqa: S105

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.core.admin_config.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "apps.core",
    "apps.tenancy",
    "apps.audit",
    "apps.compliance",
    "apps.overrides",
    "apps.flags",
    "apps.privacy",
    "apps.slo",
    "apps.alerts",
    "apps.drills",
]

MIDDLEWARE = [
    "opsportal.middleware.RequestIDMiddleware",
    "opsportal.middleware.MetricsMiddleware",
    "opsportal.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "opsportal.middleware.ProblemDocumentMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.tenancy.middleware.AdminTenantMiddleware",
    "opsportal.middleware.AdminOnlyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "opsportal.middleware.StaticCSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL is the least-privilege runtime role; DATABASE_MIGRATE_URL (the table owner) is
# used by `manage.py migrate` only, because PostgreSQL owners bypass row-level security.
_MIGRATING = len(sys.argv) > 1 and sys.argv[1] in {"migrate", "sync_schedules"}
_default_db = f"sqlite:///{VAR_DIR / 'opsportal.sqlite3'}"
DATABASE_URL = env.str("DATABASE_URL", default=_default_db)
DATABASE_MIGRATE_URL = env.str("DATABASE_MIGRATE_URL", default="")
DATABASES = {
    "default": env.db_url_config(
        DATABASE_MIGRATE_URL if (_MIGRATING and DATABASE_MIGRATE_URL) else DATABASE_URL
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
        "DATABASE_CONNECT_TIMEOUT", default=5
    )
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["opsportal.dbrouter.ReplicaRouter"]
# The role the portal runs as; migrations grant it DML on every table (docs/architecture.md).
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="opsportal_app")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "opsportal.client_ip.axes_client_ip"
# Reverse proxies in front of the portal whose X-Forwarded-For hop is trusted (0 = none).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_TENANT_TIME_ZONE = env.str("DEFAULT_TENANT_TIME_ZONE", default="America/Edmonton")

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
EVIDENCE_DIR = Path(env.str("EVIDENCE_DIR", default=str(VAR_DIR / "evidence")))

# --- DR drills (docs/operations/dr-runbook.md) -------------------------------------------------
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(VAR_DIR / "backups")))
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", default=30)
DRILL_SHADOW_TEMPLATE = env.str("DRILL_SHADOW_TEMPLATE", default="opsportal_shadow_template")
DRILL_RESTORE_JOBS = env.int("DRILL_RESTORE_JOBS", default=2)
DRILL_DISK_FACTOR = env.float("DRILL_DISK_FACTOR", default=2.0)
DRILL_COMMAND_TIMEOUT_SECONDS = env.int("DRILL_COMMAND_TIMEOUT_SECONDS", default=3600)
DRILL_QUEUED_TIMEOUT_MINUTES = env.int("DRILL_QUEUED_TIMEOUT_MINUTES", default=60)
PG_BIN_DIR = env.str("PG_BIN_DIR", default="")

# --- Privacy requests -------------------------------------------------------------------------
PRIVACY_CODE_TTL_MINUTES = env.int("PRIVACY_CODE_TTL_MINUTES", default=30)
PRIVACY_CODE_MAX_ATTEMPTS = env.int("PRIVACY_CODE_MAX_ATTEMPTS", default=5)
PRIVACY_DOWNLOAD_DAYS = env.int("PRIVACY_DOWNLOAD_DAYS", default=7)
PRIVACY_ERASURE_JOURNAL = env.str("PRIVACY_ERASURE_JOURNAL", default="")
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=5000)

# --- Security headers -------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- API --------------------------------------------------------------------------------------
REQUEST_BODY_LIMIT_BYTES = env.int("REQUEST_BODY_LIMIT_BYTES", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_LIMIT_BYTES
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenancy.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.tenancy.permissions.HasTenantRole"],
    "DEFAULT_PAGINATION_CLASS": "opsportal.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "opsportal.api.problems.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["opsportal.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "principal": env.str("THROTTLE_RATE", default="100/min"),
        "override_requests": env.str("OVERRIDE_REQUEST_THROTTLE_RATE", default="10/hour"),
        **env.dict("THROTTLE_SCOPE_RATES", default={}),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "opsportal API",
    "DESCRIPTION": "CI gates, overrides, flags, privacy requests, SLOs, alerts and DR drills.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AlertTierEnum": "apps.alerts.models.Tier",
        "AlertStatusEnum": "apps.alerts.models.AlertStatus",
        "DeliveryStatusEnum": "apps.alerts.models.DeliveryStatus",
        "DrillKindEnum": "apps.drills.models.DrillKind",
        "FlagKindEnum": "apps.flags.models.FlagKind",
        "DrillTargetEnum": "apps.drills.models.TargetKind",
    },
}
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Cache ------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "opsfs://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith(("filesystem", "opsfs"))
    else {"visibility_timeout": 3600}
)
if CELERY_BROKER_URL.startswith(("filesystem", "opsfs")):
    (VAR_DIR / "broker").mkdir(parents=True, exist_ok=True)
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="opsportal")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
OUTBOX_REDISPATCH_AFTER_SECONDS = env.int("OUTBOX_REDISPATCH_AFTER_SECONDS", default=60)
BEAT_HEARTBEAT_MAX_AGE_SECONDS = env.int("BEAT_HEARTBEAT_MAX_AGE_SECONDS", default=120)

# --- Email ------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="opsportal@localhost")

# --- Secrets at rest and alerts ----------------------------------------------------------------
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
ALERT_DELIVERY_TIMEOUT_SECONDS = env.float("ALERT_DELIVERY_TIMEOUT_SECONDS", default=5.0)
ALERT_DELIVERY_MAX_ATTEMPTS = env.int("ALERT_DELIVERY_MAX_ATTEMPTS", default=5)
ALERT_DELIVERY_GIVE_UP_SECONDS = env.float("ALERT_DELIVERY_GIVE_UP_SECONDS", default=900.0)
ALERT_RETRY_BASE_SECONDS = env.float("ALERT_RETRY_BASE_SECONDS", default=2.0)
ALERT_RETRY_MAX_SECONDS = env.float("ALERT_RETRY_MAX_SECONDS", default=300.0)
ALERT_BREAKER_FAILURE_THRESHOLD = env.int("ALERT_BREAKER_FAILURE_THRESHOLD", default=5)
ALERT_BREAKER_OPEN_SECONDS = env.float("ALERT_BREAKER_OPEN_SECONDS", default=60.0)
ALERT_DLQ_ALERT_THRESHOLD = env.int("ALERT_DLQ_ALERT_THRESHOLD", default=20)
ALERT_ACK_LINK_MAX_AGE_SECONDS = env.int("ALERT_ACK_LINK_MAX_AGE_SECONDS", default=7 * 24 * 3600)
ALERT_BLOCK_PRIVATE_TARGETS = env.bool("ALERT_BLOCK_PRIVATE_TARGETS", default=False)
PAGERDUTY_EVENTS_URL = env.str(
    "PAGERDUTY_EVENTS_URL", default="https://events.pagerduty.com/v2/enqueue"
)

# --- Compliance gate ---------------------------------------------------------------------------
COMPLIANCE_MAX_RESULTS = env.int("COMPLIANCE_MAX_RESULTS", default=100_000)
COMPLIANCE_VIOLATION_RETENTION_DAYS = env.int("COMPLIANCE_VIOLATION_RETENTION_DAYS", default=90)
COMPLIANCE_TREND_RETENTION_DAYS = env.int("COMPLIANCE_TREND_RETENTION_DAYS", default=365)
COMPLIANCE_GATE_CACHE_SECONDS = env.int("COMPLIANCE_GATE_CACHE_SECONDS", default=300)

# --- Feature flags -----------------------------------------------------------------------------
# How often a process checks whether an environment's configuration changed (the kill-switch
# propagation bound), and the OFREP request limit per environment key per worker process.
FLAGS_CONFIG_POLL_SECONDS = env.float("FLAGS_CONFIG_POLL_SECONDS", default=1.0)
FLAGS_OFREP_RATE_PER_MINUTE = env.int("FLAGS_OFREP_RATE_PER_MINUTE", default=60_000)
FLAGS_STATS_FLUSH_SECONDS = env.float("FLAGS_STATS_FLUSH_SECONDS", default=60.0)
# Where bulk-evaluation clients connect for change events (the ASGI "events" process); empty:
# the origin of the bulk request, for a proxy that routes /ofrep/v1/events to that process.
FLAGS_SSE_BASE_URL = env.str("FLAGS_SSE_BASE_URL", default="")

# SLOs (apps/slo): raw per-minute rows and minute SLI points are kept this long (the longest
# alert window plus margin; hour and day rollups are kept SLO_ROLLUP_RETENTION_DAYS).
SLO_RAW_RETENTION_DAYS = env.int("SLO_RAW_RETENTION_DAYS", default=8)
SLO_ROLLUP_RETENTION_DAYS = env.int("SLO_ROLLUP_RETENTION_DAYS", default=400)
# Minutes are judged this long after they end, so late pushes of the last minute still count.
SLO_EVALUATION_LAG_SECONDS = env.int("SLO_EVALUATION_LAG_SECONDS", default=60)
# An open canary release is closed this long after it started.
SLO_RELEASE_MAX_MINUTES = env.int("SLO_RELEASE_MAX_MINUTES", default=240)

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "opsportal.logging.RequestIDFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
