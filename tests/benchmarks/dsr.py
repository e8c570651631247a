"""Data-subject-request benchmark: export and erasure in a connected database, and the officers' queue.

    python -m tests.benchmarks.dsr [--events N] [--requests N] [--quick] [--json PATH]
    make bench DSR_BENCH_ARGS="--quick"                            # SQLite, temporary files
    DATABASE_URL=postgresql://... make bench                        # PostgreSQL, fresh _dsr_bench databases

What is measured, and what the figures mean: docs/benchmarks.md, "Data-subject requests". In short
(issue #4), for one subject with N listening events in the connected streaming database
(compliance/systems/streaming_demo.py, described by datasets/streaming_history.json):

1. Export against COPY. PostgreSQL's own ``COPY (SELECT <the exported columns> FROM
   listening_events WHERE user_id = %s ORDER BY played_at, id) TO STDOUT``, every byte read, set
   against ``SqlDataSystem.export`` fully consumed and written through ``compliance.exports.write_parts``
   (the real export path: streamed, encrypted under the subject's key), in a subprocess whose peak
   RSS (``ru_maxrss``) is the export's memory, then assembled into the subject's ZIP. The export
   without writing is shown for context. Targets: the whole export (parts and ZIP) at most 2x the
   COPY time, peak RSS under 200 MB. On SQLite there is no COPY: the export
   is timed alone.
2. Erasure against DELETE. ``SqlDataSystem.erase`` (every table of the dataset, one transaction
   each, then the kept-rows count) against a raw ``DELETE FROM listening_events WHERE user_id = %s``
   on the same freshly seeded rows. Target: at most 1.5x.
3. The admin request list. ``/admin/compliance/privacyrequest/`` rendered for a verified superuser
   with 100 and with N privacy requests, plain and with ``?deadline=overdue``: SQL statements per
   render (target: the same for both sizes) and time.

A missed target is reported as MISS, never as an exit status: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SETTINGS_MODULE = "tests.benchmarks.dsr_settings"
BASE_DIR = Path(__file__).resolve().parent.parent.parent
EXPORT_TARGET = 2.0  # export at most 2x PostgreSQL's COPY of the same rows
ERASE_TARGET = 1.5  # erasure at most 1.5x a raw DELETE of the same rows
MEMORY_TARGET_MB = 200.0  # peak RSS of the export process
PG_EVENTS = 1_000_000
SQLITE_EVENTS = 200_000  # no COPY to compare with; the export timing alone, at a size that stays quick
QUICK_EVENTS = 20_000
QUICK_REQUESTS = 2_000
SMALL_QUEUE = 100
ERASE_REPEATS = 2  # each erasure and each DELETE on freshly seeded rows; the faster run counts
RENDERS = 5  # renders per admin figure; the median is reported
BATCH = 5_000
SUBJECT_ID = "dsr-bench-listener-000001"
OTHER_LISTENERS = 20  # a few other listeners' events around the subject's, so the index has to select
OTHER_EVENTS = 500
ADMIN_PATH = "/admin/compliance/privacyrequest/"


# --- set-up ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.dsr",
        description="Benchmark data-subject-request export and erasure, and the admin request list.",
    )
    parser.add_argument(
        "--events",
        type=int,
        help=f"listening events of the subject (default {PG_EVENTS} on PostgreSQL, {SQLITE_EVENTS} on SQLite)",
    )
    parser.add_argument("--requests", type=int, help="privacy requests in the admin list (default 100000)")
    parser.add_argument(
        "--quick", action="store_true", help=f"a small run: {QUICK_EVENTS} events, {QUICK_REQUESTS} requests"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--child-export", metavar="SPEC", help=argparse.SUPPRESS)  # the measured subprocess
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else 100_000
    if args.events is not None and args.events < 1:
        parser.error("--events must be at least 1")
    if args.requests < SMALL_QUEUE:
        parser.error(f"--requests must be at least {SMALL_QUEUE}")
    return args


def setup_django(tmpdir: Path | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    if tmpdir is not None:
        os.environ["BENCH_SQLITE_PATH"] = str(tmpdir / "bench.sqlite3")
        os.environ["EXPORT_ROOT"] = str(tmpdir / "exports")
        os.environ["STREAMING_DATABASE_URL"] = f"sqlite:///{tmpdir / 'streaming.sqlite3'}"
    # tests/settings.py makes its default directories even when the environment names others: the
    # unused (empty) ones are removed again, so that a run leaves nothing behind.
    scratch = Path(tempfile.gettempdir())
    patterns = ("identity-streaming-*", "identity-exports-*")
    before = {p for pattern in patterns for p in scratch.glob(pattern)}
    import django

    django.setup()
    for path in {p for pattern in patterns for p in scratch.glob(pattern)} - before:
        with contextlib.suppress(OSError):  # not empty: not ours to remove
            path.rmdir()


def migrate() -> float:
    from django.core.management import call_command

    start = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - start


def streaming_database_name() -> str:
    from django.conf import settings

    name = f"{settings.BENCH_SOURCE_DATABASE}_dsr_streaming_bench"
    if not name.endswith("_bench") or name == settings.BENCH_SOURCE_DATABASE:
        raise RuntimeError(f"refusing to create or drop database {name!r}: not a dedicated _bench database")
    return name


def create_streaming_database(tmpdir: Path) -> str:
    """A throw-away connected database: a second SQLite file, or a fresh PostgreSQL database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return f"sqlite:///{tmpdir / 'streaming.sqlite3'}"
    from psycopg import sql

    from tests.benchmarks.run import _admin_connection

    name = streaming_database_name()
    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name}", flush=True)
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}", query="").geturl()


def drop_streaming_database() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return  # the file goes with the temporary directory
    from psycopg import sql

    from tests.benchmarks.run import _admin_connection

    name = streaming_database_name()
    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(f"dropped database {name}", flush=True)


# --- the connected database -------------------------------------------------------------------------
def subject_ref(key_id: uuid.UUID) -> Any:
    from compliance.systems.base import SubjectRef

    return SubjectRef(user_id=SUBJECT_ID, email_index="0" * 64, data_key_id=key_id)


def fresh_events(url: str, events: int) -> float:
    """Empty tables, then the subject's N events and a few other listeners'; returns the seeding time."""
    from compliance.systems import streaming_demo

    streaming_demo.drop_schema(url)
    streaming_demo.create_schema(url)
    start = time.perf_counter()
    for i in range(OTHER_LISTENERS // 2):
        streaming_demo.seed_events(url, f"dsr-bench-other-{i:06d}", OTHER_EVENTS, seed=i)
    streaming_demo.seed_events(url, SUBJECT_ID, events, seed=2026, batch_size=50_000)
    for i in range(OTHER_LISTENERS // 2, OTHER_LISTENERS):
        streaming_demo.seed_events(url, f"dsr-bench-other-{i:06d}", OTHER_EVENTS, seed=i)
    elapsed = time.perf_counter() - start
    analyze(url)
    return elapsed


def analyze(url: str) -> None:
    """Planner statistics and a vacuumed table after the bulk load, as autovacuum would give (not timed)."""
    from compliance.systems.sql import open_database

    with open_database(url) as db:
        if db.engine == "postgresql":
            db.pg.execute("VACUUM ANALYZE listening_events")
        else:
            db.lite.execute("ANALYZE")


def listening_table() -> Any:
    from compliance.systems import streaming_demo

    return next(t for t in streaming_demo.dataset().tables if t.name == "listening_events")


def copy_statement() -> str:
    from compliance.systems.sql import SqlDataSystem, quote

    table = listening_table()
    columns = ", ".join(quote(c) for c in table.export_columns)
    order = SqlDataSystem._order(table)  # the export's own ORDER BY
    return f"COPY (SELECT {columns} FROM listening_events WHERE user_id = %s ORDER BY {order}) TO STDOUT"


def time_copy(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        start = time.perf_counter()
        size = rows = 0
        with conn.cursor() as cur, cur.copy(copy_statement(), [SUBJECT_ID]) as copy:
            for data in copy:
                size += len(data)
                rows += bytes(data).count(b"\n")
        return {"seconds": time.perf_counter() - start, "bytes": size, "rows": rows}


def run_export_child(url: str, key_id: uuid.UUID, *, write: bool) -> dict[str, Any]:
    """The export in a fresh interpreter, so that its ru_maxrss is the export's own peak."""
    spec = json.dumps({"url": url, "key_id": str(key_id), "write": write})
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.dsr", "--child-export", spec],
        cwd=BASE_DIR,
        env={**os.environ},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the export subprocess failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child_export(spec_text: str) -> int:
    """Runs in the subprocess: set up Django, then export (and write) the subject's data once."""
    spec = json.loads(spec_text)
    setup_django(None)
    import django.db

    from compliance import exports
    from compliance.systems import streaming_demo

    system = streaming_demo.system(spec["url"])
    key_id = uuid.UUID(spec["key_id"])
    subject = subject_ref(key_id)
    django.db.connection.ensure_connection()
    before_mb = _rss_mb("VmRSS")
    reset = _reset_peak_rss()  # so that the peak below is the export's, not the imports'
    assembled: dict[str, Any] = {}
    start, cpu = time.perf_counter(), time.process_time()
    if spec["write"]:
        request_id = uuid.uuid4()
        # What the export task runs (compliance.fulfilment.execute): the system's batches, into parts.
        counts = exports.write_parts(request_id, system.name, key_id, exports.records_of(system, subject))
        records = sum(counts.values())
    else:
        records = sum(1 for _ in system.export(subject))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = _rss_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    written = sum(p.stat().st_size for p in Path(exports.export_root()).rglob("parts/*.enc"))
    if spec["write"]:
        # Then the task that finishes the request (compliance.fulfilment._finish_export): the ZIP.
        start, assemble_cpu = time.perf_counter(), time.process_time()
        _, size = exports.assemble(request_id, key_id, [system.describe()])
        assembled = {
            "assemble_seconds": time.perf_counter() - start,
            "assemble_cpu_seconds": time.process_time() - assemble_cpu,
            "zip_bytes": size,
            "whole_peak_rss_mb": _rss_mb("VmHWM")
            if reset
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        exports.delete_export_files(request_id)
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "records": records,
                "rss_before_mb": before_mb,
                "peak_rss_mb": peak_mb,
                "rss_increase_mb": peak_mb - before_mb,
                "peak_reset": reset,
                "written_bytes": written if spec["write"] else 0,
                **assembled,
            }
        )
    )
    return 0


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process, from /proc; ru_maxrss where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux >= 4.0: "5" to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_export(url: str, key_id: uuid.UUID, events: int, postgres: bool) -> dict[str, Any]:
    print(f"export: seeding {events:,} events ...", flush=True)
    seeded = fresh_events(url, events)
    result: dict[str, Any] = {"events": events, "seed_s": seeded}
    copies = []
    if postgres:
        copies.append(time_copy(url))
    result["export_pure"] = run_export_child(url, key_id, write=False)
    result["export_write"] = run_export_child(url, key_id, write=True)
    if postgres:
        copies.append(time_copy(url))
        best = min(copies, key=lambda c: c["seconds"])
        if best["rows"] != events:
            raise AssertionError(f"COPY read {best['rows']} rows, not {events}")
        result["copy"] = {**best, "runs_s": [c["seconds"] for c in copies]}
        result["ratio_write"] = result["export_write"]["seconds"] / best["seconds"]
        result["ratio_pure"] = result["export_pure"]["seconds"] / best["seconds"]
        whole = result["export_write"]["seconds"] + result["export_write"]["assemble_seconds"]
        result["ratio_whole"] = whole / best["seconds"]
    # seed_events adds listening events only: the other tables hold nothing of the subject.
    for kind in ("export_pure", "export_write"):
        if result[kind]["records"] != events:
            raise AssertionError(f"{kind} produced {result[kind]['records']} records, not {events}")
    return result


def measure_erasure(url: str, key_id: uuid.UUID, events: int) -> dict[str, Any]:
    from compliance.systems import streaming_demo
    from compliance.systems.sql import open_database

    system = streaming_demo.system(url)
    subject = subject_ref(key_id)
    erase_runs, delete_runs = [], []
    for repeat in range(ERASE_REPEATS):
        print(f"erasure {repeat + 1}/{ERASE_REPEATS}: seeding {events:,} events ...", flush=True)
        fresh_events(url, events)
        start = time.perf_counter()
        erased = system.erase(subject)
        erase_runs.append(time.perf_counter() - start)
        left = system.read_back(subject)
        if erased.counts.get("streaming_history.listening_events") != events or any(left.values()):
            raise AssertionError(f"erase removed {erased.counts}, read back {left}")

        print(f"erasure {repeat + 1}/{ERASE_REPEATS}: seeding {events:,} events for the raw DELETE ...", flush=True)
        fresh_events(url, events)
        start = time.perf_counter()
        with open_database(url) as db, db.transaction():
            deleted = db.execute("DELETE FROM listening_events WHERE user_id = ?", [SUBJECT_ID])
        delete_runs.append(time.perf_counter() - start)
        if deleted != events:
            raise AssertionError(f"the raw DELETE removed {deleted} rows, not {events}")
    erase_s, delete_s = min(erase_runs), min(delete_runs)
    return {
        "events": events,
        "erase_s": erase_s,
        "delete_s": delete_s,
        "erase_runs_s": erase_runs,
        "delete_runs_s": delete_runs,
        "ratio": erase_s / delete_s if delete_s else float("inf"),
        "counts": erased.counts,
    }


# --- the admin list -----------------------------------------------------------------------------------
def make_officer() -> Any:
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import User
    from accounts.services.factors import start_totp

    user = User.objects.create_user(  # type: ignore[call-arg]
        email="dsr.bench.officer@example.org",
        password="violet elephants juggle quietly at dawn",
        display_name="Bench Officer",
        date_of_birth=datetime.date(1985, 3, 14),
        country="DE",
        is_staff=True,
        is_superuser=True,
    )
    factor = start_totp(user=user, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = factor.persistent_id
    session.save()
    return client


def add_requests(start: int, stop: int) -> None:
    """Privacy requests ``start``..``stop`` in bulk: every kind, channel and status, due dates from a
    few months overdue to a few months ahead."""
    from django.db import transaction
    from django.utils import timezone

    from compliance.models import PrivacyRequest
    from identity.crypto import keystore

    kinds = list(PrivacyRequest.Kind.values)
    channels = list(PrivacyRequest.Channel.values)
    statuses = list(PrivacyRequest.Status.values)
    places = [("DE", "gdpr"), ("FR", "gdpr"), ("US-CA", "ccpa"), ("GB", "uk_gdpr")]
    now = timezone.now()
    for first in range(start, stop, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, stop)):
            received = now - datetime.timedelta(days=i % 120, minutes=i % 1440)
            due = received.date() + datetime.timedelta(days=30)
            jurisdiction, regime = places[i % len(places)]
            batch.append(
                PrivacyRequest(
                    subject=None,
                    subject_ref=f"dsr-bench-{i:010d}",
                    data_key_id=uuid.uuid4(),
                    kind=kinds[i % len(kinds)],
                    channel=channels[i % len(channels)],
                    status=statuses[(i // 7) % len(statuses)],
                    jurisdiction=jurisdiction,
                    regime=regime,
                    received_at=received,
                    received_on=received.date(),
                    deadlines=[],
                    due_on=due,
                    legal_due_on=due + datetime.timedelta(days=60),
                )
            )
        with transaction.atomic():
            keystore.ensure_keys(r.data_key_id for r in batch)  # one statement: each subject's data key
            PrivacyRequest.objects.bulk_create(batch)


def render_list(client: Any, query: str) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    path = ADMIN_PATH + query
    response = client.get(path)  # warm-up: templates, the content type cache
    if response.status_code != 200:
        raise AssertionError(f"GET {path} answered {response.status_code}")
    times = []
    renders: list[list[str]] = []
    for _ in range(RENDERS):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise AssertionError(f"GET {path} answered {response.status_code}")
        renders.append([" ".join(q["sql"].split()[:4]) for q in ctx.captured_queries])
    counts = [len(r) for r in renders]
    # The steady state is the count most renders run. A render with more also ran something that
    # happens once a while whatever the list's size (the session's last-use stamp, at most once a
    # minute; a data key's cache entry expiring after 5 minutes): shown, so it can be checked.
    steady = statistics.mode(counts)
    usual = renders[counts.index(steady)]
    occasional = sorted({q for r in renders if len(r) != steady for q in r if r.count(q) > usual.count(q)})
    return {
        "queries": steady,
        "query_counts": sorted(set(counts)),
        "occasional": occasional,
        "median_ms": statistics.median(times) * 1000,
        "rows": response.content.count(b'class="field-kind"'),
    }


def measure_admin(requests: int) -> dict[str, Any]:
    from django.db import connection

    client = make_officer()
    start = time.perf_counter()
    add_requests(0, SMALL_QUEUE)
    small = {"plain": render_list(client, ""), "overdue": render_list(client, "?deadline=overdue")}
    print(f"admin list: creating {requests:,} privacy requests ...", flush=True)
    add_requests(SMALL_QUEUE, requests)
    created_s = time.perf_counter() - start
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    large = {"plain": render_list(client, ""), "overdue": render_list(client, "?deadline=overdue")}
    return {
        "requests": requests,
        "create_s": created_s,
        "small": small,
        "large": large,
        "constant": all(small[k]["queries"] == large[k]["queries"] for k in small),
    }


# --- run and report -------------------------------------------------------------------------------------
def run(args: argparse.Namespace, tmpdir: Path) -> dict[str, Any]:
    import django
    from django.db import connection

    from identity.crypto import keystore
    from tests.benchmarks.run import database_description

    started = time.perf_counter()
    postgres = connection.vendor == "postgresql"
    events = args.events or (QUICK_EVENTS if args.quick else (PG_EVENTS if postgres else SQLITE_EVENTS))
    migrated = migrate()
    key_id = keystore.create_key()
    result: dict[str, Any] = {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "database": database_description(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "migrate_s": migrated,
        }
    }
    url = create_streaming_database(tmpdir)
    try:
        result["export"] = measure_export(url, key_id, events, postgres)
        result["erasure"] = measure_erasure(url, key_id, events)
    finally:
        drop_streaming_database()
    result["admin"] = measure_admin(args.requests)
    result["targets"] = targets(result, postgres)
    result["meta"]["elapsed_s"] = time.perf_counter() - started
    return result


def targets(result: dict[str, Any], postgres: bool) -> dict[str, Any]:
    export, erasure, admin = result["export"], result["erasure"], result["admin"]
    peak = max(export["export_write"]["peak_rss_mb"], export["export_write"]["whole_peak_rss_mb"])
    found: dict[str, Any] = {
        "export_memory": {"value_mb": peak, "target_mb": MEMORY_TARGET_MB, "ok": peak < MEMORY_TARGET_MB},
        "erasure_vs_delete": {
            "value": erasure["ratio"],
            "target": ERASE_TARGET,
            "ok": erasure["ratio"] <= ERASE_TARGET,
        },
        "admin_constant_queries": {"ok": admin["constant"]},
    }
    if postgres:
        # The whole export (parts and ZIP) is judged: it is what the subject waits for, and the parts
        # alone hold COPY's text unparsed since the formatting moved to the ZIP step.
        ratio = export["ratio_whole"]
        found["export_vs_copy"] = {"value": ratio, "target": EXPORT_TARGET, "ok": ratio <= EXPORT_TARGET}
    return found


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(result: dict[str, Any]) -> None:
    meta, export, erasure, admin, tgt = (result[k] for k in ("meta", "export", "erasure", "admin", "targets"))
    print(f"\nData-subject requests — {meta['database']}, Python {meta['python']}, Django {meta['django']}, ", end="")
    print(f"{meta['cpus']} CPUs, {meta['date']}")
    print(f"\n1. Export of {export['events']:,} listening events (seeded in {export['seed_s']:.1f} s)")
    if "copy" in export:
        copy = export["copy"]
        runs = ", ".join(f"{s:.2f}" for s in copy["runs_s"])
        print(
            f"   COPY ... TO STDOUT            {copy['seconds']:8.2f} s  "
            f"({copy['bytes'] / 2**20:.0f} MiB; runs {runs} s)"
        )
    else:
        print("   COPY comparison: needs PostgreSQL (DATABASE_URL=postgresql://...); the export is timed alone")
    for kind, label in (("export_pure", "export, records only"), ("export_write", "export + write_parts")):
        e = export[kind]
        ratio = f"  {e['seconds'] / export['copy']['seconds']:.2f}x COPY" if "copy" in export else ""
        print(
            f"   {label:<29} {e['seconds']:8.2f} s{ratio};  peak RSS {e['peak_rss_mb']:.0f} MB "
            f"(+{e['rss_increase_mb']:.0f} MB over {e['rss_before_mb']:.0f} MB after start-up); "
            f"CPU {e.get('cpu_seconds', 0):.2f} s"
        )
    written = export["export_write"]["written_bytes"]
    print(f"   encrypted parts written: {written / 2**20:.0f} MiB")
    e = export["export_write"]
    whole = e["seconds"] + e["assemble_seconds"]
    ratio = f"  {export['ratio_whole']:.2f}x COPY" if "ratio_whole" in export else ""
    print(
        f"   then assemble (the ZIP)       {e['assemble_seconds']:8.2f} s; {e['zip_bytes'] / 2**20:.0f} MiB encrypted "
        f"ZIP; peak RSS of parts + ZIP {e['whole_peak_rss_mb']:.0f} MB; CPU {e.get('assemble_cpu_seconds', 0):.2f} s "
        "(all threads)"
    )
    print(f"   whole export (parts + ZIP)    {whole:8.2f} s{ratio}  (the figure judged: what a subject waits for)")
    if "export_vs_copy" in tgt:
        t = tgt["export_vs_copy"]
        print(f"   target whole export <= {t['target']}x COPY: {t['value']:.2f}x  {_verdict(t['ok'])}")
    t = tgt["export_memory"]
    print(f"   target peak RSS < {t['target_mb']:.0f} MB (parts and ZIP): {t['value_mb']:.0f} MB  {_verdict(t['ok'])}")

    print(f"\n2. Erasure of {erasure['events']:,} listening events")
    erase_runs = {k: ", ".join(f"{s:.2f}" for s in erasure[f"{k}_runs_s"]) for k in ("delete", "erase")}
    print(f"   raw DELETE (listening_events)  {erasure['delete_s']:8.2f} s  (runs {erase_runs['delete']} s)")
    print(
        f"   SqlDataSystem.erase (6 tables) {erasure['erase_s']:8.2f} s  (runs {erase_runs['erase']} s)  "
        f"{erasure['ratio']:.2f}x"
    )
    t = tgt["erasure_vs_delete"]
    print(f"   target erase <= {t['target']}x DELETE: {t['value']:.2f}x  {_verdict(t['ok'])}")

    print(f"\n3. Admin request list {ADMIN_PATH} ({admin['requests']:,} requests created in {admin['create_s']:.1f} s)")
    print(f"   {'':<22}{'SQL statements':>16}{'median ms':>12}{'rows shown':>12}")
    for size, label in (("small", f"{SMALL_QUEUE:,} requests"), ("large", f"{admin['requests']:,} requests")):
        for kind in ("plain", "overdue"):
            r = admin[size][kind]
            name = f"{label}{', overdue' if kind == 'overdue' else ''}"
            print(f"   {name:<22}{r['queries']:>16}{r['median_ms']:>12.1f}{r['rows']:>12}")
            if r.get("occasional"):
                print(f"   {'':<22}(one render of {RENDERS} also ran: {'; '.join(r['occasional'])})")
    print(f"   target constant number of statements: {_verdict(tgt['admin_constant_queries']['ok'])}")
    print(f"\n{meta['elapsed_s']:.0f} s in all")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_export:
        return child_export(args.child_export)
    from tests.benchmarks.run import run_in_scratch

    return run_in_scratch(
        "identity-dsr-bench-", setup_django, lambda tmpdir: run(args, tmpdir), print_report, args.json
    )


if __name__ == "__main__":
    sys.exit(main())
