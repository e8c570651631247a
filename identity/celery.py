"""The Celery application: ``celery -A identity worker`` / ``celery -A identity beat``.

Without REDIS_URL tasks run eagerly in the calling process (the embedded default).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity.settings")

app = Celery("identity")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
