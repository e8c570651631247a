"""Test settings: the real settings module, with throw-away keys made fresh for every run.

DATABASE_URL and REDIS_URL pass through, so the same suite runs on SQLite and on PostgreSQL/Redis.
"""

import base64
import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", base64.b64encode(os.urandom(48)).decode())
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "test-1:" + base64.b64encode(os.urandom(32)).decode())
os.environ.setdefault("BLIND_INDEX_KEY", base64.b64encode(os.urandom(32)).decode())
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# The connected streaming-history database (compliance/systems/sql.py): a throw-away file, never the
# development one; CI points it at a second PostgreSQL database.
if "STREAMING_DATABASE_URL" not in os.environ:
    os.environ["STREAMING_DATABASE_URL"] = (
        f"sqlite:///{tempfile.mkdtemp(prefix='identity-streaming-')}/streaming.sqlite3"
    )
if "EXPORT_ROOT" not in os.environ:
    os.environ["EXPORT_ROOT"] = tempfile.mkdtemp(prefix="identity-exports-")

from identity.settings import *  # noqa: F403

# Tests that need a plaintext value to compare never log it; keep test output quiet.
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# SQLite test databases in memory, said outright: pytest-django's xdist support names a test database
# after the file unless the engine is Django's own SQLite one, and ours (identity.backends) is not.
for _database in DATABASES.values():  # noqa: F405
    if _database["ENGINE"].endswith("sqlite3"):
        _database.setdefault("TEST", {}).setdefault("NAME", ":memory:")

# Tasks run in the test process (a test that needs a real worker and broker starts one itself);
# that worker runs with CELERY_TASK_ALWAYS_EAGER=0.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "1") == "1"
