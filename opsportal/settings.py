"""OpsPortal settings: everything comes from the environment (see .env.example).

Without DATABASE_URL / REDIS_URL the portal runs embedded: SQLite, a filesystem Celery broker and
database-backed live events, so `make run` needs no server. Production sets both URLs.
"""

import ipaddress
import json
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from opsportal.env import check_secret_key, env_bool, env_int, env_list, env_str, proxy_ssl_header

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("OPSPORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)


def _dev_key(filename: str, make) -> str:
    """A key persisted under var/ — only for DEBUG runs; production must set the variable."""
    if not DEBUG:
        raise ImproperlyConfigured(f"Set the environment variable for {filename} (DEBUG is off).")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or _dev_key("secret_key", lambda: secrets.token_urlsafe(50))
check_secret_key(SECRET_KEY, debug=DEBUG)
# Fernet keys for credentials at rest; the first encrypts, all decrypt (comma-separated, for rotation).
SECRETS_ENCRYPTION_KEYS = env_list("OPSPORTAL_SECRETS_KEYS") or [_dev_key("secrets_key", _fernet_key)]

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "django_htmx",
    "axes",
    "projects",
    "clusters",
    "configs",
    "deploys",
    "observability",
    "alerting",
]

MIDDLEWARE = [
    # First, so the whole stack is inside the request's measured time (opsportal.metrics).
    "opsportal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "opsportal.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so that its 400 page renders like any other page.
    "opsportal.middleware.RejectNulBytesMiddleware",
    "projects.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires, so it sees the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
ASGI_APPLICATION = "opsportal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "opsportal.context_processors.portal",
            ],
            "libraries": {"portal": "opsportal.templatetags.portal"},
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # The web server and the worker write concurrently: WAL plus immediate transactions
            # turn lock upgrades into short waits instead of "database is locked" errors.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and channel layer; absent means embedded mode --------------------
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = not REDIS_URL

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
    CELERY_BROKER_URL = REDIS_URL
    # Redis hands an unacknowledged message (acks_late) to another worker after this long. It must exceed
    # the longest a live worker keeps one unacknowledged — a task's hard time limit, or a countdown it
    # holds (a retry's Retry-After) — or a running step would be delivered twice. Recovering a killed
    # worker's step is the run heartbeat's job (RUN_STALE_SECONDS, minutes earlier); a redelivery after
    # that finds the step held by its resumed message, or ended, and does nothing (docs/architecture.md).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# The in-memory channel layer cannot cross from the worker process to the web process, so in
# embedded mode each WebSocket consumer also polls the event table at this interval (seconds).
LIVE_EVENTS_POLL_SECONDS = float(env_str("LIVE_EVENTS_POLL_SECONDS", "0.5" if EMBEDDED else "0"))
# An open socket re-checks its subscriptions' access (membership, session) before delivering, at most this
# often per stream; removal from a project and logout also trigger an immediate re-check.
LIVE_EVENTS_ACCESS_RECHECK_SECONDS = float(env_str("LIVE_EVENTS_ACCESS_RECHECK_SECONDS", "5"))

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth -----------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_FAILURE_VIEW = "opsportal.views.csrf_failure"

# --- HTTPS ----------------------------------------------------------------------------------
# Behind a TLS-terminating proxy, the header it sets to say "this came in over https", e.g.
# DJANGO_SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto=https. Only set it when the proxy always overwrites it.
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env_str("DJANGO_SECURE_PROXY_SSL_HEADER", ""))
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# HSTS is sent on https responses only. Served over https (secure cookies), browsers are told to stay on
# https for a year by default; subdomains and preload stay opt-in, since they bind other hosts too.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if SESSION_COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (opsportal.security): on by default; switching it off is for debugging only.
OPSPORTAL_CSP_ENABLED = env_bool("OPSPORTAL_CSP_ENABLED", True)

# --- i18n -----------------------------------------------------------------------------------
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
# For people whose browser asks for neither language, and for what the worker writes into progress
# logs and error messages (a team that works in Chinese sets zh-hans).
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    choices = ", ".join(dict(LANGUAGES))
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of {choices}, not {LANGUAGE_CODE!r}.")
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# DEBUG and tests serve straight from the finders; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "opsportal.authentication.DigestTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "opsportal.api.PortalAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "opsportal.api.exception_handler",
}
# The schema and its Swagger page describe every endpoint: signed-in users only unless this opens them.
OPSPORTAL_API_DOCS_PUBLIC = env_bool("OPSPORTAL_API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "SERVE_PERMISSIONS": ["opsportal.security.ApiDocsAccess"],
    "TITLE": "OpsPortal API",
    "DESCRIPTION": "Every action the OpsPortal pages offer. Authenticate with a session or `Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files: the portal's machines have no route to a CDN.
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui/favicon-32x32.png",
    # Choice sets shared by several components, or whose field name other models use too ("kind",
    # "status"), get one name of their own.
    "ENUM_NAME_OVERRIDES": {
        "AlertStatusEnum": "alerting.choices.AlertStatus",
        "ChannelKindEnum": "alerting.choices.ChannelKind",
        "DeliveryStatusEnum": "alerting.choices.DeliveryStatus",
    },
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # kubernetes.client.rest logs whole response bodies (tokens included) at DEBUG.
    "loggers": {"axes": {"level": "WARNING"}, "kubernetes": {"level": "INFO"}},
}

# --- Runs: heartbeats and resume (opsportal/runs.py) ----------------------------------------
# A step at work writes its run's heartbeat this often (seconds).
RUN_HEARTBEAT_SECONDS = env_int("RUN_HEARTBEAT_SECONDS", 10)
# A run in progress with no heartbeat for this long lost its worker (or its message): it is resumed.
RUN_STALE_SECONDS = env_int("RUN_STALE_SECONDS", 60)
# How often the sweeper looks (beat); a killed worker's run is resumed within STALE + SWEEP seconds.
RUN_SWEEP_SECONDS = env_int("RUN_SWEEP_SECONDS", 30)
# Resumes of one step before the run is given up (failed, or reconciled with the cluster).
RUN_MAX_RESUMES = env_int("RUN_MAX_RESUMES", 3)

CELERY_BEAT_SCHEDULE = {
    "resume-stale-releases": {"task": "deploys.tasks.resume_stale_releases", "schedule": RUN_SWEEP_SECONDS},
    "resume-stale-tickets": {"task": "deploys.tasks.resume_stale_tickets", "schedule": RUN_SWEEP_SECONDS},
    "resume-stale-log-proxy-rollouts": {
        "task": "deploys.tasks.resume_stale_log_proxy_rollouts",
        "schedule": RUN_SWEEP_SECONDS,
    },
    "resume-stale-config-changes": {
        "task": "clusters.tasks.resume_stale_config_changes",
        "schedule": RUN_SWEEP_SECONDS,
    },
    "prune-live-events": {"task": "observability.tasks.prune_live_events", "schedule": 3600.0},
    "fail-stuck-tickets": {"task": "deploys.tasks.fail_stuck_tickets", "schedule": 300.0},
    "fail-stuck-releases": {"task": "deploys.tasks.fail_stuck_releases", "schedule": 300.0},
    "fail-stuck-log-proxy-rollouts": {
        "task": "deploys.tasks.fail_stuck_log_proxy_rollouts",
        "schedule": 300.0,
    },
    "fail-stuck-config-changes": {"task": "clusters.tasks.fail_stuck_config_changes", "schedule": 300.0},
    "prune-terminal-recordings": {"task": "clusters.tasks.prune_terminal_recordings", "schedule": 3600.0},
    "reap-terminal-sessions": {"task": "clusters.tasks.reap_stale_terminal_sessions", "schedule": 120.0},
    "expire-terminal-grants": {"task": "projects.tasks.expire_terminal_grants", "schedule": 60.0},
    "sweep-dashboards": {"task": "clusters.tasks.sweep_dashboards", "schedule": RUN_SWEEP_SECONDS},
    "sweep-verifications": {"task": "deploys.tasks.sweep_verifications", "schedule": 300.0},
}

# --- Provisioning and integrations ----------------------------------------------------------
# The image a new Deployment runs until its first release replaces it.
OPSPORTAL_BOOTSTRAP_IMAGE = env_str("OPSPORTAL_BOOTSTRAP_IMAGE", "registry.local/opsportal/bootstrap:1")
# How long provisioning waits for a Deployment to become available, in seconds.
OPSPORTAL_ROLLOUT_TIMEOUT = env_int("OPSPORTAL_ROLLOUT_TIMEOUT", 660)
# Transient integration errors (timeouts, 5xx, 429) are retried this often, with exponential backoff.
INTEGRATION_MAX_RETRIES = env_int("INTEGRATION_MAX_RETRIES", 5)
INTEGRATION_RETRY_BACKOFF_SECONDS = env_int("INTEGRATION_RETRY_BACKOFF_SECONDS", 5)
# A 429/503 may ask for a longer wait (Retry-After); it is obeyed up to this many seconds, so a wild value
# cannot park a release for hours (and a Redis ETA longer than its visibility timeout is delivered twice).
INTEGRATION_MAX_RETRY_AFTER_SECONDS = env_int("INTEGRATION_MAX_RETRY_AFTER_SECONDS", 300)

# --- Release pipeline (GitLab → Jenkins → registry). An unset URL turns that integration off. ---
GITLAB_URL = env_str("GITLAB_URL", "")
GITLAB_TOKEN = env_str("GITLAB_TOKEN", "")
JENKINS_URL = env_str("JENKINS_URL", "")
JENKINS_USER = env_str("JENKINS_USER", "")
JENKINS_TOKEN = env_str("JENKINS_TOKEN", "")
# Jenkins jobs that the project's job is copied from, e.g. opsportal-template-java.
JENKINS_TEMPLATE_PREFIX = env_str("JENKINS_TEMPLATE_PREFIX", "opsportal-template-")
# The registry's API address, and the host name images are referred to by (often the same).
REGISTRY_URL = env_str("REGISTRY_URL", "")
REGISTRY_HOST = env_str("REGISTRY_HOST", "")
REGISTRY_USER = env_str("REGISTRY_USER", "")
REGISTRY_PASSWORD = env_str("REGISTRY_PASSWORD", "")
# Base image per language for the generic Dockerfiles, as JSON, e.g. {"java": "…/jre:17", "default": "…"}.
OPSPORTAL_BASE_IMAGES = json.loads(env_str("OPSPORTAL_BASE_IMAGES", "{}") or "{}")
# The image holding the preStop hook's static HTTP client (deploys/prestop), which the generic Dockerfiles
# copy in a first stage ({{ prestop_helper_image }}).
OPSPORTAL_PRESTOP_HELPER_IMAGE = env_str("OPSPORTAL_PRESTOP_HELPER_IMAGE", "")
# `make run` only: the dotted path of a callable that returns the local development cluster's progress
# (an object with .phase and .message, and .pods_mode/.pods_reason) or None; the Clusters page shows it
# until the cluster is ready, and a banner while the sandbox's pods are simulated.
# The sandbox sets it, so the application never imports the sandbox.
DEV_CLUSTER_STATUS = env_str("OPSPORTAL_DEV_CLUSTER_STATUS", "")
# How long a release waits for its Jenkins build, in seconds.
RELEASE_BUILD_TIMEOUT = env_int("RELEASE_BUILD_TIMEOUT", 1800)
# A running build is looked at this often, in seconds; between looks it holds no worker.
RELEASE_BUILD_POLL_SECONDS = env_int("RELEASE_BUILD_POLL_SECONDS", 2)
# A rollout fails as soon as one of its new pods is OOMKilled or in CrashLoopBackOff after this many
# restarts (waiting longer only restarts it again); its pods are looked at every ..._CHECK_SECONDS.
RELEASE_CRASHLOOP_RESTARTS = env_int("RELEASE_CRASHLOOP_RESTARTS", 3)
RELEASE_POD_CHECK_SECONDS = env_int("RELEASE_POD_CHECK_SECONDS", 5)
# The log proxy (logproxy/) the portal deploys to a cluster's log pipeline: the GitLab project holding its
# source and the branch a rollout tags and builds (with the "python" recipe), and the port of its /metrics.
LOGPROXY_GIT_PROJECT = env_str("LOGPROXY_GIT_PROJECT", "ops/logproxy")
LOGPROXY_GIT_BRANCH = env_str("LOGPROXY_GIT_BRANCH", "main")
LOGPROXY_METRICS_PORT = env_int("LOGPROXY_METRICS_PORT", 9121)

# The address people open the portal at: messages (alerts, workflow notices) carry links made from it.
PORTAL_PUBLIC_URL = env_str("PORTAL_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

# Monitoring: Grafana (a dashboard per environment; an empty GRAFANA_URL turns dashboards off).
# GRAFANA_TOKEN is a service-account token with the Editor role (Administration → Service accounts).
GRAFANA_URL = env_str("GRAFANA_URL", "")
GRAFANA_TOKEN = env_str("GRAFANA_TOKEN", "")
# The address people open dashboards at, when it differs from the one the worker calls (a proxy).
GRAFANA_PUBLIC_URL = env_str("GRAFANA_PUBLIC_URL", "")
# The Prometheus data source the dashboards use: found by this uid, created when missing with
# GRAFANA_PROMETHEUS_URL, which is Prometheus as Grafana's server reaches it (default PROMETHEUS_URL).
GRAFANA_DATASOURCE_UID = env_str("GRAFANA_DATASOURCE_UID", "opsportal-prometheus")
GRAFANA_DATASOURCE_NAME = env_str("GRAFANA_DATASOURCE_NAME", "OpsPortal Prometheus")
GRAFANA_PROMETHEUS_URL = env_str("GRAFANA_PROMETHEUS_URL", "") or env_str("PROMETHEUS_URL", "")
# A sync that waits in pending (Grafana was down through its retries) is tried again after this long.
GRAFANA_SYNC_RETRY_SECONDS = env_int("GRAFANA_SYNC_RETRY_SECONDS", 120)

# Config: Apollo's portal Open API (per-project app id, envs and an encrypted consumer token live in the
# database). An empty APOLLO_PORTAL_URL turns Apollo off; each call gives up after APOLLO_TIMEOUT_SECONDS.
APOLLO_PORTAL_URL = env_str("APOLLO_PORTAL_URL", "").rstrip("/")
APOLLO_TIMEOUT_SECONDS = env_int("APOLLO_TIMEOUT_SECONDS", 15)

# Alerting: chat robots. Where the DingTalk custom robots and WeCom group robots are called; the access
# tokens, signing secrets and keys belong to each channel. Tests and `make run` point these at the
# sandbox's stand-in (sandbox/chatrobots).
DINGTALK_WEBHOOK_BASE = env_str("DINGTALK_WEBHOOK_BASE", "https://oapi.dingtalk.com")
WECOM_WEBHOOK_BASE = env_str("WECOM_WEBHOOK_BASE", "https://qyapi.weixin.qq.com")

# Alerting: SMS
# Alibaba Cloud SMS (Dysmsapi SendSms, RPC signature V1). An empty SMS_ACCESS_KEY_ID turns SMS off. The
# key belongs to a RAM user allowed to send SMS (AliyunDysmsFullAccess); sign names and templates are the
# approved ones each channel names.
SMS_ENDPOINT = env_str("SMS_ENDPOINT", "https://dysmsapi.aliyuncs.com")
SMS_ACCESS_KEY_ID = env_str("SMS_ACCESS_KEY_ID", "")
SMS_ACCESS_KEY_SECRET = env_str("SMS_ACCESS_KEY_SECRET", "")
SMS_REGION = env_str("SMS_REGION", "cn-hangzhou")

# Alerting: email, through Django's SMTP backend. An empty EMAIL_HOST turns email channels off.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Without a timeout a mail server that accepts the connection and never answers holds a worker forever.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 15)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "OpsPortal <opsportal@localhost>")

# Alerting: sending. A robot takes 20 messages a minute; the portal sends at most this many, so a message
# that arrives a little late at the robot never lands over the limit. Messages over it wait for a free
# slot and go out merged into one.
ALERTING_ROBOT_PER_MINUTE = env_int("ALERTING_ROBOT_PER_MINUTE", 19)
# A transient failure (5xx, a timeout, a rate-limit errcode) is tried again after
# BACKOFF * 2^(attempts-1) seconds, at most MAX_BACKOFF (or after what the service asked for), and given up
# (failed, shown on the channel) after MAX_ATTEMPTS.
ALERTING_RETRY_BACKOFF_SECONDS = env_int("ALERTING_RETRY_BACKOFF_SECONDS", 10)
ALERTING_MAX_BACKOFF_SECONDS = env_int("ALERTING_MAX_BACKOFF_SECONDS", 600)
ALERTING_MAX_ATTEMPTS = env_int("ALERTING_MAX_ATTEMPTS", 10)
# How often the sweeper sends due deliveries (beat), and after how long a delivery still "sending" lost
# its worker (longer than the clients' timeouts).
ALERTING_SWEEP_SECONDS = env_int("ALERTING_SWEEP_SECONDS", 15)
ALERTING_SENDING_STALE_SECONDS = env_int("ALERTING_SENDING_STALE_SECONDS", 120)
CELERY_BEAT_SCHEDULE["sweep-deliveries"] = {
    "task": "alerting.tasks.sweep_deliveries",
    "schedule": ALERTING_SWEEP_SECONDS,
}
# An alert change whose routing failed (or whose process died before routing it) is routed by the sweeper
# once it is this old.
ALERT_ROUTE_GRACE_SECONDS = env_int("ALERT_ROUTE_GRACE_SECONDS", 60)
CELERY_BEAT_SCHEDULE["route-missed-alerts"] = {
    "task": "alerting.tasks.route_missed_alerts",
    "schedule": ALERTING_SWEEP_SECONDS,
}

# --- Environment pages ----------------------------------------------------------------------
# Each web process runs one watch per (cluster, namespace, kind) however many pages show it; this caps
# how many it runs (five per environment being looked at). A page past it loads without live updates.
ENVIRONMENT_WATCH_MAX_KEYS = env_int("ENVIRONMENT_WATCH_MAX_KEYS", 250)
# Container logs followed at once per web process (one thread each); one more is refused with a message.
ENVIRONMENT_LOG_FOLLOWERS_MAX = env_int("ENVIRONMENT_LOG_FOLLOWERS_MAX", 20)
# The environment page's view of the log pipeline (Kafka): how long the portal waits for a broker (s), how
# much one search may read (records, seconds), and the live tail's chain: the pause between two reads (s)
# and how long a viewer counts without refreshing (s; the page refreshes at a third of it).
LOG_PIPELINE_KAFKA_TIMEOUT = float(env_str("LOG_PIPELINE_KAFKA_TIMEOUT", "5"))
LOG_PIPELINE_SEARCH_MAX_SCAN = env_int("LOG_PIPELINE_SEARCH_MAX_SCAN", 200_000)
LOG_PIPELINE_SEARCH_SECONDS = float(env_str("LOG_PIPELINE_SEARCH_SECONDS", "10"))
LOG_PIPELINE_TAIL_INTERVAL = float(env_str("LOG_PIPELINE_TAIL_INTERVAL", "1"))
LOG_PIPELINE_TAIL_VIEWER_SECONDS = env_int("LOG_PIPELINE_TAIL_VIEWER_SECONDS", 15)

# --- Web terminal ---------------------------------------------------------------------------
# A terminal with no keystroke for this long is closed, in seconds.
TERMINAL_IDLE_SECONDS = env_int("TERMINAL_IDLE_SECONDS", 900)
# Open terminals per user; one more is refused with a message.
TERMINAL_MAX_SESSIONS_PER_USER = env_int("TERMINAL_MAX_SESSIONS_PER_USER", 3)
# An open session proves it is alive this often, in seconds; one silent for 3 beats is ended as lost
# (its server crashed), so it no longer counts against the per-user limit.
TERMINAL_HEARTBEAT_SECONDS = env_int("TERMINAL_HEARTBEAT_SECONDS", 60)
# Production terminals are granted by ops for this many hours unless they choose otherwise, and for at
# most PROD_TERMINAL_GRANT_MAX_HOURS: a shell in a prod pod reads the prod secrets.
PROD_TERMINAL_GRANT_HOURS = env_int("PROD_TERMINAL_GRANT_HOURS", 8)
PROD_TERMINAL_GRANT_MAX_HOURS = env_int("PROD_TERMINAL_GRANT_MAX_HOURS", 72)
if not 1 <= PROD_TERMINAL_GRANT_HOURS <= PROD_TERMINAL_GRANT_MAX_HOURS:
    raise ImproperlyConfigured(
        "PROD_TERMINAL_GRANT_HOURS must be between 1 and PROD_TERMINAL_GRANT_MAX_HOURS."
    )
# An open production terminal re-checks its grant this often, in seconds, and closes once it lapsed.
TERMINAL_GRANT_RECHECK_SECONDS = env_int("TERMINAL_GRANT_RECHECK_SECONDS", 30)
# Session recordings (asciicast v2), append-only; deleted after the retention period.
TERMINAL_RECORDINGS_DIR = Path(env_str("TERMINAL_RECORDINGS_DIR", str(VAR_DIR / "recordings")))
TERMINAL_RECORDING_RETENTION_DAYS = env_int("TERMINAL_RECORDING_RETENTION_DAYS", 180)

# --- Monitoring: Prometheus and the scrape-target discovery ---------------------------------
# The Prometheus the panels query (empty = monitoring off; pages say so).
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "")
# A bearer token for that Prometheus when it sits behind an authenticating proxy.
PROMETHEUS_TOKEN = env_str("PROMETHEUS_TOKEN", "")
# Prometheus' scrape interval, in seconds: the panels' rate() ranges cover four scrapes.
PROMETHEUS_SCRAPE_INTERVAL = env_int("PROMETHEUS_SCRAPE_INTERVAL", 15)
# What Prometheus presents to the portal's machine endpoints (/metrics and /api/monitoring/sd/<cluster>/):
# a bearer token, or a client address in one of these networks (comma-separated CIDRs). Neither = closed.
MONITORING_TOKEN = env_str("MONITORING_TOKEN", "")
MONITORING_ALLOWED_NETWORKS = [
    ipaddress.ip_network(cidr.strip(), strict=False) for cidr in env_list("MONITORING_ALLOWED_NETWORKS", [])
]
# The discovery answer is kept this long per cluster and web process: Prometheus polls it every scrape
# interval, and one pod list per cluster per interval is all it costs the apiserver.
MONITORING_SD_CACHE_SECONDS = env_int("MONITORING_SD_CACHE_SECONDS", 5)

# Monitoring: Prometheus configuration. When PROMETHEUS_CONFIG_FILE is set the portal writes that file
# (the base YAML plus one http_sd job per cluster and a job for its own /metrics), checks it with
# promtool and asks Prometheus (PROMETHEUS_URL) to reload; unset, the portal leaves Prometheus' file alone.
PROMETHEUS_CONFIG_FILE = env_str("PROMETHEUS_CONFIG_FILE", "")
PROMETHEUS_CONFIG_BASE = env_str("PROMETHEUS_CONFIG_BASE", "")
PROMTOOL = env_str("PROMTOOL", "promtool")
# One alert rule file per active environment is written here (checked with promtool, then Prometheus is
# reloaded); the configuration loads <dir>/*.yml. Default: "rules" beside PROMETHEUS_CONFIG_FILE.
PROMETHEUS_RULES_DIR = env_str("PROMETHEUS_RULES_DIR", "")
# The range of the rates the error-ratio and latency rules read (a Prometheus duration): longer is
# steadier, shorter notices and resolves sooner.
ALERT_RULES_RATE_WINDOW = env_str("ALERT_RULES_RATE_WINDOW", "5m")
if not re.fullmatch(r"[1-9][0-9]*(s|m|h)", ALERT_RULES_RATE_WINDOW):
    raise ImproperlyConfigured("ALERT_RULES_RATE_WINDOW is a duration such as 30s, 5m or 1h.")
# Where Prometheus sends firing alerts (http(s)://host:port[/prefix]); empty: no alerting block.
ALERTMANAGER_URL = env_str("ALERTMANAGER_URL", "")
# The portal's address as Prometheus reaches it (service discovery and /metrics), and the file holding
# MONITORING_TOKEN that Prometheus reads (so the token is never written into the configuration).
PROMETHEUS_PORTAL_URL = env_str("PROMETHEUS_PORTAL_URL", "http://127.0.0.1:8000")
MONITORING_TOKEN_FILE = env_str("MONITORING_TOKEN_FILE", "")

# --- Monitoring: the portal's own /metrics --------------------------------------------------
# A directory shared by the web server and the worker processes of one host, emptied at each start:
# prometheus_client's multiprocess mode adds up their values there (opsportal.metrics). prometheus_client
# reads it from the environment itself, before any metric exists; named here so it is documented.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")

# --- Alerting: Alertmanager ------------------------------------------------------------------
# ALERTMANAGER_URL (above, with Prometheus) is also the Alertmanager whose v2 API the portal sets
# silences through (empty = silences off; pages say so). A bearer token for it when it sits behind an
# authenticating proxy:
ALERTMANAGER_TOKEN = env_str("ALERTMANAGER_TOKEN", "")
# What Alertmanager's webhook receiver presents to POST /api/alerts/alertmanager (its http_config):
# a bearer token, or basic auth with this user and password. Neither set = the receiver is closed.
ALERTMANAGER_WEBHOOK_TOKEN = env_str("ALERTMANAGER_WEBHOOK_TOKEN", "")
ALERTMANAGER_WEBHOOK_USER = env_str("ALERTMANAGER_WEBHOOK_USER", "")
ALERTMANAGER_WEBHOOK_PASSWORD = env_str("ALERTMANAGER_WEBHOOK_PASSWORD", "")
# A silence set from the portal lasts at least 1 minute and at most this many.
ALERT_SILENCE_MAX_MINUTES = env_int("ALERT_SILENCE_MAX_MINUTES", 7 * 24 * 60)

# --- Project cockpit (issue 13, cockpit) ----------------------------------------------------
# The cockpit's live parts (pods, autoscaler, traffic) are polled this often (s); its sparklines span the
# last COCKPIT_SPARKLINE_MINUTES minutes, in 60 points.
COCKPIT_POLL_SECONDS = env_int("COCKPIT_POLL_SECONDS", 20)
COCKPIT_SPARKLINE_MINUTES = env_int("COCKPIT_SPARKLINE_MINUTES", 60)
