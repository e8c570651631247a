"""The Django project and the platform every app builds on (encryption, keys, logging, health)."""

from identity.celery import app as celery_app

__all__ = ["celery_app"]
