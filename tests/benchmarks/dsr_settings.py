"""Settings for the data-subject-request benchmark (``python -m tests.benchmarks.dsr``, ``make bench``).

The test settings (throw-away keys, made once by the benchmark process and inherited through the
environment by the export subprocesses it starts). The database is never one that holds anything:
without DATABASE_URL a temporary SQLite *file* (BENCH_SQLITE_PATH, set by dsr.py); with a
PostgreSQL DATABASE_URL, a database named after it with ``_dsr_bench`` appended, which dsr.py
creates before the run and drops after it. The connected streaming database is a second throw-away
one (``_dsr_streaming_bench``, or a second temporary file), handled by dsr.py alone.
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
    # dsr.py connects to this one only to CREATE and DROP the _dsr_bench databases.
    BENCH_SOURCE_DATABASE = _source["NAME"]
    DATABASES = {"default": {**_source, "NAME": f"{_source['NAME']}_dsr_bench"}}
