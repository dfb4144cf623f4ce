import os

from celery import Celery

from opsportal import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")

app = Celery("opsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
metrics.connect_celery_signals()
