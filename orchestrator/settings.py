"""Baton settings: everything from the environment; unset means the embedded default."""

from __future__ import annotations

import logging
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import env_bool, env_float, env_int, env_json_object, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("BATON_DATA_DIR", ".baton")).expanduser().resolve()

SECRET_KEY = env_secret("BATON_SECRET_KEY", "baton-embedded-insecure-key-change-me")
DEBUG = env_bool("BATON_DEBUG", False)
ALLOWED_HOSTS = [
    host for host in env_str("BATON_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if host
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "flows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from STATIC_ROOT under gunicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
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
WSGI_APPLICATION = "orchestrator.wsgi.application"

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("BATON_DB_CONN_MAX_AGE", 60))
    }
    EMBEDDED_DATABASE = False
else:
    # Embedded default: SQLite in WAL mode. IMMEDIATE transactions take the write lock at
    # BEGIN, so two threads never deadlock upgrading a read lock; the busy timeout queues them.
    DATABASES = {
        "default": {
            "ENGINE": "orchestrator.sqlite",
            "NAME": DATA_DIR / "baton.sqlite3",
            "OPTIONS": {
                "timeout": env_float("BATON_SQLITE_TIMEOUT", 30.0),
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not the shared in-memory database: worker threads must see committed rows,
            # and the busy timeout does not apply to shared-cache table locks.
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
            "CONN_MAX_AGE": env_int("BATON_DB_CONN_MAX_AGE", 60),
        }
    }
    EMBEDDED_DATABASE = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [folder for folder in [BASE_DIR / "static"] if folder.is_dir()]  # the UI issue fills it
# `collectstatic` (the Docker image runs it at build time) writes gzip copies that whitenoise
# serves; no manifest, so running without `collectstatic` (tests, the embedded default) still works.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Internal storage: a local folder by default (`kestra://` URIs map below it), or an
# S3-compatible bucket; BATON_STORAGE_OVERRIDES (JSON) moves a tenant or a namespace elsewhere.
# flows.storage parses all of it and raises ImproperlyConfigured naming the bad variable.
BATON_STORAGE = env_str("BATON_STORAGE", "local")
if BATON_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"BATON_STORAGE must be `local` or `s3`, got {BATON_STORAGE!r}")
BATON_STORAGE_DIR = Path(env_str("BATON_STORAGE_DIR", str(DATA_DIR / "storage"))).expanduser().resolve()
BATON_STORAGE_S3_BUCKET = env_str("BATON_STORAGE_S3_BUCKET")
BATON_STORAGE_S3_REGION = env_str("BATON_STORAGE_S3_REGION")
BATON_STORAGE_S3_ENDPOINT_URL = env_str("BATON_STORAGE_S3_ENDPOINT_URL")
BATON_STORAGE_S3_ACCESS_KEY = env_secret("BATON_STORAGE_S3_ACCESS_KEY")
BATON_STORAGE_S3_SECRET_KEY = env_secret("BATON_STORAGE_S3_SECRET_KEY")
BATON_STORAGE_S3_PREFIX = env_str("BATON_STORAGE_S3_PREFIX")
BATON_STORAGE_OVERRIDES = env_json_object("BATON_STORAGE_OVERRIDES")
# Where S3 objects are downloaded when a task needs a local file path.
BATON_STORAGE_CACHE_DIR = (
    Path(env_str("BATON_STORAGE_CACHE_DIR", str(DATA_DIR / "storage-cache"))).expanduser().resolve()
)
# A task output value above the inline limit (bytes of JSON) is stored as a file and replaced
# by its kestra:// URI; outputs above the hard limit in total fail the attempt.
BATON_OUTPUT_INLINE_LIMIT = env_int("BATON_OUTPUT_INLINE_LIMIT", 1024 * 1024)
BATON_OUTPUT_HARD_LIMIT = env_int("BATON_OUTPUT_HARD_LIMIT", 100 * 1024 * 1024)
BATON_WORKING_DIR = Path(env_str("BATON_WORKING_DIR", str(DATA_DIR / "work"))).expanduser().resolve()
BATON_DEFAULT_TENANT = env_str("BATON_DEFAULT_TENANT", "main")
# How stale a process's copy of the kill switches may get (seconds). A switch changed in this
# process is seen at once; one changed elsewhere within this delay. Checked on every advance and
# every task attempt, so a lower value costs one small query per process per interval.
BATON_KILL_SWITCH_REFRESH_SECONDS = env_float("BATON_KILL_SWITCH_REFRESH_SECONDS", 2.0)
# Expression variables: `envs` are the environment variables with this prefix (stripped,
# lower-cased), as Kestra's `kestra.variables.env-vars-prefix`; `globals` is a JSON object.
BATON_ENV_VARS_PREFIX = env_str("BATON_ENV_VARS_PREFIX", "KESTRA_")
BATON_GLOBALS = env_json_object("BATON_GLOBALS")
# Threads of the in-process worker of the embedded default.
BATON_EMBEDDED_WORKER_THREADS = env_int("BATON_EMBEDDED_WORKER_THREADS", 8)

# Delivery and recovery (DESIGN.md). A worker holds a lease on each task run it runs and renews
# it every third of the lease; the reaper gives a new attempt to runs whose lease expired,
# sends again the messages of runs still SUBMITTED after BATON_RESUBMIT_AFTER_SECONDS (a broker
# that lost them), and re-advances executions that stopped moving.
BATON_LEASE_SECONDS = env_float("BATON_LEASE_SECONDS", 60.0)
BATON_RESUBMIT_AFTER_SECONDS = env_float("BATON_RESUBMIT_AFTER_SECONDS", 300.0)
BATON_REAPER_INTERVAL_SECONDS = env_float("BATON_REAPER_INTERVAL_SECONDS", 15.0)
# How often celery-beat sends the tick that fires due timers (retries, pauses, sleeps, SLAs).
BATON_TICK_INTERVAL_SECONDS = env_float("BATON_TICK_INTERVAL_SECONDS", 1.0)
# A worker that finishes a task run runs itself the next one its result made ready on the same
# queue (no broker round trip), for up to this many seconds per message; then it sends them
# through the broker again, so one long flow cannot hold a worker. 0 sends every run.
BATON_WORKER_CONTINUE_SECONDS = env_float("BATON_WORKER_CONTINUE_SECONDS", 5.0)
# A task run whose worker vanished this many times fails instead of getting another attempt.
BATON_MAX_WORKER_LOSSES = env_int("BATON_MAX_WORKER_LOSSES", 3)

# Celery. Unset broker means the embedded default: kombu's in-memory transport with a worker
# inside the process. Virtual transports poll, by default once a second, which makes a
# 40-task chain take 40 s; a 1 ms polling interval makes it take a few ms (DESIGN.md).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://localhost/")
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.001} if EMBEDDED_BROKER else {}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "orchestrator.beat:Scheduler"  # DatabaseScheduler that survives its database

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BATON_LOG_LEVEL", "WARNING")},
}

logging.getLogger(__name__).info(
    "baton mode: database=%s broker=%s",
    "sqlite (embedded)" if EMBEDDED_DATABASE else DATABASES["default"]["ENGINE"],
    "memory (in-process worker)" if EMBEDDED_BROKER else CELERY_BROKER_URL.split("@")[-1],
)

# REST API (shared API.md): Kestra's v1 paths and shapes. Users authenticate with HTTP Basic or an
# API token (`Authorization: Bearer`); every answer is JSON, errors in Kestra's shape.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "flows.api.auth.TokenAuthentication",
        "flows.api.auth.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "flows.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": "Kestra v1 compatible REST API of Baton.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files, never a CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
# Key material for namespace secrets at rest: any string; several, comma-separated and newest first,
# to rotate. Unset: derived from SECRET_KEY (then changing BATON_SECRET_KEY makes stored secrets
# unreadable). Web and worker processes must share it.
BATON_SECRETS_KEY = env_secret("BATON_SECRETS_KEY")
# Largest request body (uploads of FILE inputs and namespace files), in bytes.
BATON_API_MAX_UPLOAD_BYTES = env_int("BATON_API_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = BATON_API_MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads are spooled to a temporary file
# How long `executions run --wait` / `?wait=true` may hold a request open (seconds).
BATON_API_WAIT_SECONDS = env_float("BATON_API_WAIT_SECONDS", 600.0)
# Execution search without a start date looks this many days back (a bounded, indexed scan).
BATON_API_SEARCH_DAYS = env_int("BATON_API_SEARCH_DAYS", 30)
# Most executions one bulk action by query applies to.
BATON_API_BULK_MAX = env_int("BATON_API_BULK_MAX", 10_000)
# Invitations: days an accept link stays valid, and the public address of this server that links
# in emails start with (unset: the address the inviting admin's request came to).
BATON_INVITATION_DAYS = env_int("BATON_INVITATION_DAYS", 7)
if BATON_INVITATION_DAYS < 1:
    raise ImproperlyConfigured(f"BATON_INVITATION_DAYS must be >= 1, got {BATON_INVITATION_DAYS}")
# Email (invitations): Django's SMTP backend, configured from the environment.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "baton@localhost")
# Passwords chosen when accepting an invitation (and in the admin) are checked by Django's validators.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
BATON_PUBLIC_URL = env_str("BATON_PUBLIC_URL").rstrip("/")
if BATON_PUBLIC_URL and not BATON_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"BATON_PUBLIC_URL must start with http:// or https://, got {BATON_PUBLIC_URL!r}"
    )
