"""Field-encryption benchmark: our AES-256-GCM fields against django-encrypted-model-fields and plain fields.

    python -m tests.benchmarks.run [--users N] [--repeat R] [--pages P] [--json PATH]
    make bench BENCH_ARGS="--users 10000"            # SQLite, a temporary file
    DATABASE_URL=postgresql://... make bench          # PostgreSQL, a fresh <name>_bench database

What is measured, and what the figures mean: docs/benchmarks.md. In short, for N users saved in
three tables that differ only in how the personal fields are stored (tests/benchmarks/benchapp):

- save: ``bulk_create`` in batches of 500 (ours first creates the batch's data keys with
  ``keystore.ensure_keys``, one statement per batch: that is part of our cost);
- full load: every row read and every personal field touched, with our data-key cache cleared
  first, so fetching and unwrapping every subject's key is counted;
- page of 100: ``order_by("pk")[offset:offset + 100]`` at P offsets, every field touched; "warm"
  with the subjects' keys in the in-process cache, "cold" with the cache cleared before each page;
- micro: the cost of encrypting and decrypting one value, without the ORM or the database;
- the floor: plain fields' round trip plus the crypto alone that a key per subject needs (keys made,
  stored, read back and unwrapped; one AES-256-GCM operation per value), which no implementation of
  this design that moves its rows as Django moves plain ones can beat. Ours can go below it where
  it moves them more cheaply: on PostgreSQL its bulk INSERT sends the ciphertexts as binary arrays,
  where Django escapes the plain fields' text arrays in Python (docs/benchmarks.md).

Every figure is the median of R repeats, and is set against the plain-field baseline measured in
the same run (these machines are noisy). A missed target is reported, never an exit status: this
is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import operator
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SETTINGS_MODULE = "tests.benchmarks.settings"
BATCH = 500
PAGE = 100
KINDS = ("plain", "fernet", "ours")
LABELS = {"plain": "plain fields", "fernet": "Fernet package", "ours": "ours AES-256-GCM"}
ROUND_TRIP_TARGET = 3.0  # ours at least 3x faster than the Fernet package, save + load
PAGE_TARGET = 2.0  # a page of 100 users no more than 2x the plain-field time
MICRO_VALUES = 20_000
MICRO_KEYS = 1_000


# --- set-up ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run",
        description="Benchmark the AES-256-GCM model fields against django-encrypted-model-fields and plain fields.",
    )
    parser.add_argument("--users", type=int, default=10_000, help="users per table (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the median is reported (default 3)")
    parser.add_argument("--pages", type=int, default=200, help="pages of 100 timed per mode (default 200)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument(
        "--random-page-cost",
        default="1.1",
        metavar="COST",
        help="PostgreSQL: the planner's random_page_cost for the bench database, as deploy/README.md sets it "
        "(default 1.1); 'server' keeps the server's own (4 unless configured)",
    )
    args = parser.parse_args(argv)
    if args.random_page_cost != "server":
        try:
            if float(args.random_page_cost) <= 0:
                raise ValueError
        except ValueError:
            parser.error("--random-page-cost must be a positive number or 'server'")
    if args.users < PAGE or args.repeat < 1 or args.pages < 1:
        parser.error(f"--users must be at least {PAGE}, --repeat and --pages at least 1")
    return args


def setup_django(tmpdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["BENCH_SQLITE_PATH"] = str(tmpdir / "bench.sqlite3")
    import django

    django.setup()


def _admin_connection() -> Any:
    """A psycopg connection to the DATABASE_URL database, used only to create and drop the _bench one."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    params: dict[str, Any] = {"dbname": settings.BENCH_SOURCE_DATABASE, "autocommit": True}
    for key, param in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
        if db.get(key):
            params[param] = db[key]
    if db.get("OPTIONS", {}).get("sslmode"):
        params["sslmode"] = db["OPTIONS"]["sslmode"]
    return psycopg.connect(**params)


def _bench_database_name() -> str:
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    # Never the DATABASE_URL database itself: only the dedicated one the settings derived from it.
    if not name.endswith("_bench") or name == settings.BENCH_SOURCE_DATABASE:
        raise RuntimeError(f"refusing to create or drop database {name!r}: not a dedicated _bench database")
    return name


def create_database() -> None:
    from django.conf import settings
    from django.db import connection

    if connection.vendor not in ("sqlite", "postgresql"):
        raise SystemExit(f"the benchmark runs on SQLite or PostgreSQL, not {connection.vendor}")
    if connection.vendor != "postgresql":
        return
    from psycopg import sql

    name = _bench_database_name()
    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name} (from DATABASE_URL's {settings.BENCH_SOURCE_DATABASE})", flush=True)


def drop_database() -> None:
    from django.db import connection, connections

    connections.close_all()
    if connection.vendor != "postgresql":
        return
    from psycopg import sql

    name = _bench_database_name()
    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(f"dropped database {name}", flush=True)


def recreate_tables(*models: Any) -> None:
    """Drop (if present) and create the tables of ``models``: every measurement starts from empty tables."""
    from django.db import connection

    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in models:
            if model._meta.db_table in existing:
                editor.delete_model(model)
            editor.create_model(model)


def analyze() -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give (not timed)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def set_random_page_cost(cost: str) -> None:
    """On PostgreSQL, the planner's random_page_cost for the bench database's new sessions (the
    deployment's setting, deploy/README.md); 'server' leaves the server's own."""
    from django.db import connection, connections
    from psycopg import sql

    if connection.vendor != "postgresql" or cost == "server":
        return
    with _admin_connection() as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET random_page_cost = {}").format(
                sql.Identifier(_bench_database_name()), sql.Literal(float(cost))
            )
        )
    connections.close_all()  # the next connection starts with it


def database_description() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SHOW random_page_cost")
            return f"PostgreSQL {version}, random_page_cost {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]} (file)"


# --- data ---------------------------------------------------------------------------------------
FIRST = ["Ada", "Björn", "Chiara", "Dmitri", "Eun-ji", "Farah", "Gustavo", "Hana", "Idris", "Joëlle"]
LAST = ["Okafor", "Lindqvist", "Rossi", "Ivanov", "Kim", "Haddad", "Pereira", "Novak", "Mensah", "Dubois"]
PLACES = [
    ("DE", "DE-BE"),
    ("FR", "FR-IDF"),
    ("US", "US-CA"),
    ("US", "US-NY"),
    ("GB", "GB-LND"),
    ("BR", "BR-SP"),
]
GENRES = ["jazz", "techno", "folk", "hip-hop", "classical", "indie", "metal", "ambient", "soul", "k-pop"]


def make_people(n: int, *, start: int = 0, seed: int = 20261127) -> list[dict[str, Any]]:
    """N listeners' personal data, the same for every table and repeat."""
    rng = random.Random(seed + start)
    people = []
    for i in range(start, start + n):
        country, region = rng.choice(PLACES)
        people.append(
            {
                "email": f"listener{i:06d}@example.org",
                "display_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "date_of_birth": datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(20_000)),
                "country": country,
                "region": region,
                "phone": f"+{rng.randrange(1, 99)}{rng.randrange(10**9, 10**10)}",
                "preferences": {
                    "language": rng.choice(["de", "en", "fr", "pt"]),
                    "explicit": rng.random() < 0.5,
                    "autoplay": rng.random() < 0.8,
                    "genres": rng.sample(GENRES, 3),
                    "newsletter": rng.random() < 0.3,
                },
            }
        )
    return people


# --- measurement ------------------------------------------------------------------------------------
def models_by_kind() -> dict[str, Any]:
    from tests.benchmarks.benchapp.models import FernetUser, OursUser, PlainUser

    return {"plain": PlainUser, "fernet": FernetUser, "ours": OursUser}


def _touch_all() -> Callable[[Any], tuple[Any, ...]]:
    from tests.benchmarks.benchapp.models import PERSONAL_FIELDS

    return operator.attrgetter(*PERSONAL_FIELDS)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load_page(model: Any, offset: int, touch: Callable[[Any], Any]) -> None:
    for user in list(model.objects.order_by("pk")[offset : offset + PAGE]):
        touch(user)


def verify(model: Any, people: list[dict[str, Any]], touch: Callable[[Any], Any]) -> None:
    """The values read back are the values saved: the benchmark measures real decryption."""
    from tests.benchmarks.benchapp.models import PERSONAL_FIELDS

    by_email = {p["email"]: p for p in people}
    for user in model.objects.order_by("pk")[:PAGE]:
        expected = by_email[user.email]
        got = dict(zip(PERSONAL_FIELDS, touch(user), strict=True))
        if got != {f: expected[f] for f in PERSONAL_FIELDS}:
            raise AssertionError(f"{model.__name__} read back different values than it saved")


def queries_per_page(model: Any, touch: Callable[[Any], Any], *, cold: bool) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from identity.crypto import keystore

    keystore.clear_cache()
    if not cold:
        load_page(model, 0, touch)  # the page's keys are now cached
    with CaptureQueriesContext(connection) as ctx:
        load_page(model, 0, touch)
    return len(ctx.captured_queries)


def measure_model(
    kind: str, people: list[dict[str, Any]], offsets: list[int], late: list[dict[str, Any]]
) -> dict[str, float]:
    from django.db import transaction

    from identity.crypto import keystore
    from identity.models import SubjectKey

    model = models_by_kind()[kind]
    touch = _touch_all()
    recreate_tables(model, *([SubjectKey] if kind == "ours" else []))
    batches = [[model(**p) for p in people[i : i + BATCH]] for i in range(0, len(people), BATCH)]
    keystore.clear_cache()
    gc.collect()

    # (1) save: bulk_create in batches of 500; ours makes the batch's data keys first.
    def save() -> None:
        for batch in batches:
            if kind == "ours":
                keystore.ensure_keys(user.data_key_id for user in batch)
            model.objects.bulk_create(batch)

    save_s = _timed(save)
    analyze()

    # (2) full load, every personal field touched; no key cached, so every key is fetched and unwrapped.
    def full_load() -> None:
        count = 0
        for user in model.objects.iterator(chunk_size=2000):
            touch(user)
            count += 1
        if count != len(people):
            raise AssertionError(f"{model.__name__}: loaded {count} rows, saved {len(people)}")

    keystore.clear_cache()
    gc.collect()
    load_s = _timed(full_load)
    verify(model, people, touch)

    # (3) pages of 100. Warm: the full load left every subject's key in the cache (the steady state
    # of a busy worker). Cold: cache cleared before each page, so its 100 subjects' keys are fetched.
    gc.collect()
    warm = [_timed(lambda off=off: load_page(model, off, touch)) for off in offsets]
    cold = []
    for off in offsets:
        keystore.clear_cache()
        cold.append(_timed(lambda off=off: load_page(model, off, touch)))

    # (4) one batch of new users saved inside a transaction, as a sign-up view under ATOMIC_REQUESTS
    # or an import does. Set against the per-user cost of (1), which ran in autocommit.
    newcomers = [model(**p) for p in late]

    def save_in_transaction() -> None:
        with transaction.atomic():
            if kind == "ours":
                keystore.ensure_keys(user.data_key_id for user in newcomers)
            model.objects.bulk_create(newcomers)

    gc.collect()
    atomic_s = _timed(save_in_transaction)
    return {
        "save_s": save_s,
        "load_s": load_s,
        "round_trip_s": save_s + load_s,
        "page_warm_ms": statistics.median(warm) * 1000,
        "page_cold_ms": statistics.median(cold) * 1000,
        "page_first_cold_ms": cold[0] * 1000,
        "save_us_per_user": save_s / len(people) * 1e6,
        "save_atomic_us_per_user": atomic_s / len(late) * 1e6,
        "queries_page_warm": queries_per_page(model, touch, cold=False),
        "queries_page_cold": queries_per_page(model, touch, cold=True),
    }


def measure_micro() -> dict[str, float]:
    """Microseconds per value: encryption alone, then each package's field path, without the database."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from django.db import connection
    from encrypted_model_fields.fields import decrypt_str, encrypt_str

    from identity.crypto import envelope, keystore
    from identity.models import SubjectKey
    from tests.benchmarks.benchapp.models import FernetUser, OursUser

    recreate_tables(SubjectKey)
    keystore.clear_cache()
    key_ids = [uuid.uuid4() for _ in range(MICRO_KEYS)]
    keystore.ensure_keys(key_ids)
    value = "listener004217@example.org"
    plaintext = value.encode()
    context = "benchapp.oursuser.email"
    subjects = [key_ids[i % MICRO_KEYS] for i in range(MICRO_VALUES)]
    out: dict[str, float] = {}

    def per_value(name: str, fn: Callable[[], Any], count: int = MICRO_VALUES) -> Any:
        gc.collect()
        start = time.perf_counter()
        result = fn()
        out[name] = (time.perf_counter() - start) / count * 1e6
        return result

    # The floor: one AES-256-GCM operation from cryptography, fixed key, no framing.
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)
    raw = per_value("raw_aesgcm_encrypt_us", lambda: [aead.encrypt(nonce, plaintext, b"ad") for _ in subjects])
    per_value("raw_aesgcm_decrypt_us", lambda: [aead.decrypt(nonce, t, b"ad") for t in raw])

    # Ours, envelope only (keys cached): header, random nonce, per-subject cipher from the cache.
    tokens = per_value(
        "ours_encrypt_us", lambda: [envelope.encrypt(plaintext, key_id=k, context=context) for k in subjects]
    )
    per_value("ours_decrypt_us", lambda: [envelope.decrypt(t, context=context) for t in tokens])

    # Ours, the field path the ORM takes: pre_save() on save, from_db_value() on load.
    field = OursUser._meta.get_field("email")
    instances = [OursUser(email=value, data_key_id=k) for k in subjects]
    stored = per_value("ours_field_save_us", lambda: [field.pre_save(u, True) for u in instances])
    per_value("ours_field_load_us", lambda: [field.from_db_value(t, None, connection) for t in stored])

    # Ours, a key not in the cache: one SELECT from the key store, then the KEK unwraps it.
    keystore.clear_cache()
    per_value("ours_cold_key_us", lambda: [keystore.cipher_for_decrypt(k) for k in key_ids], count=len(key_ids))

    # The Fernet package: its helpers, then its field path (get_db_prep_save / from_db_value).
    ftokens = per_value("fernet_encrypt_us", lambda: [encrypt_str(value).decode() for _ in subjects])
    per_value("fernet_decrypt_us", lambda: [decrypt_str(t) for t in ftokens])
    ffield = FernetUser._meta.get_field("email")
    fstored = per_value("fernet_field_save_us", lambda: [ffield.get_db_prep_save(value, connection) for _ in subjects])
    per_value("fernet_field_load_us", lambda: [ffield.from_db_value(t, None, connection) for t in fstored])
    return out


def measure_floor(people: list[dict[str, Any]]) -> dict[str, float]:
    """The least that a data key per subject adds to plain fields, whatever the implementation: the
    crypto of the round trip alone, in tight loops, with no ORM, no header and no wider rows.

    Save: the subjects' keys made and stored (``keystore.ensure_keys``: random key, KEK wrap, the
    ``AESGCM`` object, the key rows' INSERT), then one AES-256-GCM encryption per personal value
    (nonces from one random read). Load: the keys read back and unwrapped (``keystore.load_keys``,
    100 a query, as a page's are), then one decryption per value. A round trip that moves its rows
    as the plain one does can be no faster than the plain one plus this, so Fernet's round trip over
    that sum is the most such a design reaches here (the "floor" line of the report); ours goes
    below it on PostgreSQL, whose INSERT it sends in binary (identity.backends.postgresql.compiler)."""
    from identity.crypto import keystore
    from identity.models import SubjectKey
    from tests.benchmarks.benchapp.models import PERSONAL_FIELDS, OursUser

    fields = [OursUser._meta.get_field(name) for name in PERSONAL_FIELDS]
    plaintexts = [[f.encode_value(p[f.name]) for f in fields] for p in people]  # type: ignore[attr-defined]
    ids = [uuid.uuid4() for _ in people]
    recreate_tables(SubjectKey)
    keystore.clear_cache()
    aad = b"benchapp.oursuser.field"
    gc.collect()
    start = time.perf_counter()
    for begin in range(0, len(ids), BATCH):
        keystore.ensure_keys(ids[begin : begin + BATCH])
    nonces = os.urandom(12 * len(people) * len(fields))
    at = 0
    sealed = []
    for key_id, values in zip(ids, plaintexts, strict=True):
        cipher = keystore.peek(key_id.bytes)
        for value in values:
            nonce = nonces[at : at + 12]
            at += 12
            sealed.append((nonce, cipher.encrypt(nonce, value, aad)))  # type: ignore[union-attr]
    save_s = time.perf_counter() - start
    keystore.clear_cache()
    gc.collect()
    start = time.perf_counter()
    raw_ids = [key_id.bytes for key_id in ids]
    for begin in range(0, len(raw_ids), PAGE):
        keystore.load_keys(raw_ids[begin : begin + PAGE])
    width = len(fields)
    for i, kid in enumerate(raw_ids):
        cipher = keystore.peek(kid)
        for nonce, token in sealed[i * width : (i + 1) * width]:
            cipher.decrypt(nonce, token, aad)  # type: ignore[union-attr]
    load_s = time.perf_counter() - start
    # A page's share: 100 subjects' seven values opened, their keys cached (warm) or read and
    # unwrapped first (cold), added to the plain page in targets().
    pages: dict[str, list[float]] = {"warm": [], "cold": []}
    for begin in range(0, len(raw_ids) - PAGE + 1, PAGE * 5):
        page = raw_ids[begin : begin + PAGE]
        for mode in ("cold", "warm"):
            if mode == "cold":
                keystore.clear_cache()
            start = time.perf_counter()
            if mode == "cold":
                keystore.load_keys(page)
            for i, kid in enumerate(page, start=begin):
                cipher = keystore.peek(kid)
                for nonce, token in sealed[i * width : (i + 1) * width]:
                    cipher.decrypt(nonce, token, aad)  # type: ignore[union-attr]
            pages[mode].append(time.perf_counter() - start)
    return {
        "floor_save_s": save_s,
        "floor_load_s": load_s,
        "floor_s": save_s + load_s,
        "floor_page_warm_ms": statistics.median(pages["warm"]) * 1000,
        "floor_page_cold_ms": statistics.median(pages["cold"]) * 1000,
    }


# --- report ---------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {kind: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for kind, rs in runs.items()}


def targets(med: dict[str, dict[str, float]]) -> dict[str, Any]:
    plain, fernet, ours = (med[k] for k in KINDS)
    rt_ratio = _ratio(fernet["round_trip_s"], ours["round_trip_s"])
    overhead_ratio = _ratio(
        fernet["round_trip_s"] - plain["round_trip_s"], ours["round_trip_s"] - plain["round_trip_s"]
    )
    floor = med["floor"]["floor_s"] + plain["round_trip_s"]
    page_warm = _ratio(ours["page_warm_ms"], plain["page_warm_ms"])
    page_cold = _ratio(ours["page_cold_ms"], plain["page_cold_ms"])
    return {
        "round_trip_fernet_over_ours": rt_ratio,
        "round_trip_pass": rt_ratio >= ROUND_TRIP_TARGET,
        "overhead_fernet_over_ours": overhead_ratio,
        "overhead_pass": overhead_ratio >= ROUND_TRIP_TARGET,
        "floor_round_trip_s": floor,
        "round_trip_fernet_over_floor": _ratio(fernet["round_trip_s"], floor),
        "round_trip_ours_over_floor": _ratio(ours["round_trip_s"], floor),
        "page_warm_floor_over_plain": _ratio(
            plain["page_warm_ms"] + med["floor"]["floor_page_warm_ms"], plain["page_warm_ms"]
        ),
        "page_cold_floor_over_plain": _ratio(
            plain["page_cold_ms"] + med["floor"]["floor_page_cold_ms"], plain["page_cold_ms"]
        ),
        "page_warm_ours_over_plain": page_warm,
        "page_warm_pass": page_warm <= PAGE_TARGET,
        "page_cold_ours_over_plain": page_cold,
        "page_cold_pass": page_cold <= PAGE_TARGET,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(result: dict[str, Any]) -> None:
    meta, med, micro, tgt = result["meta"], result["median"], result["micro_median"], result["targets"]
    print()
    print(
        f"Field encryption benchmark, {meta['date']}: {meta['users']:,} users, median of {meta['repeat']} "
        f"repeats, {meta['pages']} pages per page figure"
    )
    print(
        f"{meta['database']}; Python {meta['python']}, Django {meta['django']}, "
        f"django-encrypted-model-fields {meta['fernet_package']}; {meta['cpus']} CPU cores"
    )
    print()
    rows = [
        ("save (bulk_create, 500/batch)", "save_s", "s"),
        ("full load, every field touched", "load_s", "s"),
        ("round trip (save + full load)", "round_trip_s", "s"),
        ("page of 100, keys cached (warm)", "page_warm_ms", "ms"),
        ("page of 100, keys not cached (cold)", "page_cold_ms", "ms"),
        ("save per user, autocommit (row 1)", "save_us_per_user", "us"),
        (f"save per user, {BATCH} in one atomic()", "save_atomic_us_per_user", "us"),
    ]
    header = f"{'':38}" + "".join(f"{LABELS[k]:>26}" for k in KINDS)
    print(header)
    print("-" * len(header))
    for label, metric, unit in rows:
        base = med["plain"][metric]
        cells = []
        for kind in KINDS:
            v = med[kind][metric]
            cell = {"s": f"{v:.3f} s", "ms": f"{v:.2f} ms", "us": f"{v:.1f} us"}[unit]
            if kind != "plain":
                cell += f" ({_ratio(v, base):.2f}x)"
            cells.append(f"{cell:>26}")
        print(f"{label:38}" + "".join(cells))
    q = "".join(f"{med[k]['queries_page_warm']:>12.0f} warm/{med[k]['queries_page_cold']:>4.0f} cold" for k in KINDS)
    print(f"{'SQL queries per page':38}{q}")
    print("(x) = ratio against plain fields measured in the same run")
    print()
    print(f"Per value, without the ORM or the database (microseconds, {MICRO_VALUES:,} values):")
    micro_rows = [
        ("AES-256-GCM alone (cryptography), enc/dec", "raw_aesgcm_encrypt_us", "raw_aesgcm_decrypt_us"),
        ("ours: envelope.encrypt / decrypt", "ours_encrypt_us", "ours_decrypt_us"),
        ("ours: field pre_save / from_db_value", "ours_field_save_us", "ours_field_load_us"),
        ("Fernet: encrypt_str / decrypt_str", "fernet_encrypt_us", "fernet_decrypt_us"),
        ("Fernet: field get_db_prep_save / from_db_value", "fernet_field_save_us", "fernet_field_load_us"),
    ]
    for label, enc, dec in micro_rows:
        print(f"  {label:48}{micro[enc]:>8.2f} us /{micro[dec]:>7.2f} us")
    print(
        f"  {'Fernet/ours, field path save / load':48}"
        f"{_ratio(micro['fernet_field_save_us'], micro['ours_field_save_us']):>8.2f} x  /"
        f"{_ratio(micro['fernet_field_load_us'], micro['ours_field_load_us']):>7.2f} x"
    )
    print(f"  {'ours: one data key not cached (SELECT + unwrap)':48}{micro['ours_cold_key_us']:>8.2f} us")
    print()
    print("Targets:")
    print(
        f"  [{_verdict(tgt['round_trip_pass'])}] save+load round trip, Fernet/ours = "
        f"{tgt['round_trip_fernet_over_ours']:.2f}x (target >= {ROUND_TRIP_TARGET:.0f}x)"
    )
    print(
        f"  [{_verdict(tgt['overhead_pass'])}] encryption overhead over plain, (Fernet-plain)/(ours-plain) = "
        f"{tgt['overhead_fernet_over_ours']:.2f}x (target >= {ROUND_TRIP_TARGET:.0f}x)"
    )
    print(
        f"         the floor, plain fields + the crypto alone ({tgt['floor_round_trip_s']:.3f} s): Fernet/floor = "
        f"{tgt['round_trip_fernet_over_floor']:.2f}x, ours/floor = {tgt['round_trip_ours_over_floor']:.2f}x"
        + (
            "  (out of reach here of a key per subject with Django's own INSERT and SELECT)"
            if tgt["round_trip_fernet_over_floor"] < ROUND_TRIP_TARGET
            else ""
        )
    )
    print(
        f"  [{_verdict(tgt['page_warm_pass'])}] page of 100, keys cached, ours/plain = "
        f"{tgt['page_warm_ours_over_plain']:.2f}x (target <= {PAGE_TARGET:.0f}x)"
    )
    print(
        f"  [{_verdict(tgt['page_cold_pass'])}] page of 100, keys not cached, ours/plain = "
        f"{tgt['page_cold_ours_over_plain']:.2f}x (target <= {PAGE_TARGET:.0f}x)"
    )
    print(
        f"         the page floors, a plain page + the crypto alone: warm {tgt['page_warm_floor_over_plain']:.2f}x, "
        f"cold {tgt['page_cold_floor_over_plain']:.2f}x"
    )
    print(f"Total time {meta['elapsed_s']:.0f} s.")


# --- main -----------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    import django
    from django.conf import settings

    started = time.perf_counter()
    set_random_page_cost(args.random_page_cost)
    people = make_people(args.users)
    late = make_people(BATCH, start=args.users)
    rng = random.Random(7)
    offsets = [rng.randrange(0, args.users - PAGE + 1) for _ in range(args.pages)]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in (*KINDS, "floor")}
    micro_runs: list[dict[str, float]] = []
    for r in range(args.repeat):
        order = KINDS[r % 3 :] + KINDS[: r % 3]  # rotate, so no table always goes first
        for kind in order:
            t0 = time.perf_counter()
            runs[kind].append(measure_model(kind, people, offsets, late))
            print(
                f"repeat {r + 1}/{args.repeat}: {LABELS[kind]} done in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        micro_runs.append(measure_micro())
        runs["floor"].append(measure_floor(people))
    med = summarise(runs)
    micro_med = {m: statistics.median(r[m] for r in micro_runs) for m in micro_runs[0]}
    return {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "users": args.users,
            "repeat": args.repeat,
            "pages": args.pages,
            "batch": BATCH,
            "page_size": PAGE,
            "database": database_description(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "fernet_package": version("django-encrypted-model-fields"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "dek_cache_max_entries": settings.DEK_CACHE_MAX_ENTRIES,
            "dek_cache_ttl_seconds": settings.DEK_CACHE_TTL_SECONDS,
            "elapsed_s": time.perf_counter() - started,
        },
        "runs": runs,
        "median": med,
        "micro_runs": micro_runs,
        "micro_median": micro_med,
        "targets": targets(med),
    }


def run_in_scratch(
    prefix: str,
    setup: Callable[[Path], None],
    work: Callable[[Path], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    json_path: Path | None,
) -> int:
    """What every benchmark's main does: a temporary directory, Django set up, a database of its
    own created and always dropped, then the report (and the figures as JSON when asked)."""
    tmpdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        setup(tmpdir)
        create_database()
        try:
            result = work(tmpdir)
        finally:
            drop_database()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    report(result)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"figures written to {json_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def setup(tmpdir: Path) -> None:
        setup_django(tmpdir)
        from django.conf import settings

        if args.users > settings.DEK_CACHE_MAX_ENTRIES:
            print(
                f"note: {args.users} users > DEK_CACHE_MAX_ENTRIES={settings.DEK_CACHE_MAX_ENTRIES}: "
                "the 'warm' page figure will not be warm for every subject",
                file=sys.stderr,
            )

    return run_in_scratch("identity-bench-", setup, lambda _tmp: run(args), print_report, args.json)


if __name__ == "__main__":
    sys.exit(main())
