"""Test overrides on top of opsportal.settings. The harness (sandbox/testenv.py) provides
DATABASE_URL and REDIS_URL for the real PostgreSQL and Redis the suite runs against."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("OPSPORTAL_SECRETS_KEYS", "VGVzdEtleVRlc3RLZXlUZXN0S2V5VGVzdEtleTEyMzQ=")
# Prometheus' credential for /metrics; the server processes the tests start inherit it.
os.environ.setdefault("MONITORING_TOKEN", "test-monitoring-token-0123456789")
# Alertmanager's credential for the alert receiver (POST /api/alerts/alertmanager), likewise inherited.
os.environ.setdefault("ALERTMANAGER_WEBHOOK_TOKEN", "test-alertmanager-webhook-token-0123")

from opsportal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

# The suite's worker and web server processes share a private queue, so stale messages from an
# interrupted run never reach them.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TEST_CELERY_QUEUE", "opsportal-test")

# One test database per run, so concurrent runs against the same server never drop each other's.
DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_opsportal_{os.getpid()}"  # noqa: F405
