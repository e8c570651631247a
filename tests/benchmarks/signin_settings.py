"""Settings for the sign-in benchmark (``python -m tests.benchmarks.signin``, ``make bench``).

The test settings (throw-away keys, made once by the benchmark process and inherited through the
environment by the gunicorn workers it starts), with three changes:

- the database is never one that holds anything: without DATABASE_URL a temporary SQLite *file*
  (BENCH_SQLITE_PATH, set by signin.py); with a PostgreSQL DATABASE_URL, a database named after it
  with ``_signin_bench`` appended, which signin.py creates before the run and drops after it;
- the "login" throttle (60/minute per IP) is raised, because the benchmark signs in hundreds of
  times a minute from one address; the throttle still runs, it just never trips;
- the URLconf is tests/benchmarks/urls.py: the project's URLs plus ``bench/bare``, the baseline
  endpoint for the throughput comparison.
"""

import os
import tempfile
from pathlib import Path

from tests.settings import *  # noqa: F403

_source = DATABASES["default"]  # noqa: F405
if _source["ENGINE"].endswith("sqlite3"):
    _path = os.environ.get("BENCH_SQLITE_PATH") or str(Path(tempfile.mkdtemp(prefix="bench-")) / "bench.sqlite3")
    DATABASES = {"default": {**_source, "NAME": _path}}
    BENCH_SOURCE_DATABASE = None
else:
    # signin.py connects to this one only to CREATE and DROP the _signin_bench database.
    BENCH_SOURCE_DATABASE = _source["NAME"]
    DATABASES = {"default": {**_source, "NAME": f"{_source['NAME']}_signin_bench"}}

ROOT_URLCONF = "tests.benchmarks.urls"

BENCH_LOGIN_THROTTLE = "100000/minute"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],  # noqa: F405
        "login": BENCH_LOGIN_THROTTLE,
    },
}
