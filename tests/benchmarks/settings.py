"""Settings for the field-encryption benchmark (``python -m tests.benchmarks.run``, ``make bench``).

The test settings (throw-away keys), plus the benchmark's models and django-encrypted-model-fields
(the package we compare against) with a fresh Fernet key. The database is never one that holds
anything: without DATABASE_URL a temporary SQLite *file* (BENCH_SQLITE_PATH, set by run.py); with
a PostgreSQL DATABASE_URL, a database named after it with ``_bench`` appended, which run.py creates
before the run and drops after it.
"""

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "encrypted_model_fields", "tests.benchmarks.benchapp"]  # noqa: F405

# django-encrypted-model-fields: one Fernet key, made fresh for every run.
FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()

_source = DATABASES["default"]  # noqa: F405
if _source["ENGINE"].endswith("sqlite3"):
    _path = os.environ.get("BENCH_SQLITE_PATH") or str(Path(tempfile.mkdtemp(prefix="bench-")) / "bench.sqlite3")
    DATABASES = {"default": {**_source, "NAME": _path}}
    BENCH_SOURCE_DATABASE = None
else:
    # run.py connects to this one only to CREATE and DROP the _bench database.
    BENCH_SOURCE_DATABASE = _source["NAME"]
    DATABASES = {"default": {**_source, "NAME": f"{_source['NAME']}_bench"}}
