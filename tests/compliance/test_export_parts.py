"""The export's fast path gives the same files: batches from a connected database, compact parts, the ZIP.

Requirement: issue #4 "Export": a ZIP with one JSON and one CSV file per category, streamed so memory
stays flat, encrypted under the subject's key; and its performance target (docs/benchmarks.md,
"Data-subject requests"). The fast path (``SqlDataSystem.export_batches``: COPY on PostgreSQL; parts
with one line per batch of records, or COPY's text kept unparsed from ``export_copy``; JSON and CSV
made a batch at a time) must not change a byte of what the subject gets: these tests compare it with
the records one at a time (one JSON object and one ``csv.writer`` row per record).
"""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance import exports
from compliance.systems import sql, streaming_demo
from compliance.systems.base import Description, Record, RecordBatch, SubjectRef
from compliance.systems.sql import SqlDataSystem, open_database, parse_dataset
from identity.crypto import keystore
from tests.compliance.scratch_database import scratch_postgres

ODD_ID = "0dd00000-0000-4000-8000-0000000000dd"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TEXTS = [
    "plain",
    "",
    "comma, inside",
    'a "quoted" word',
    "tab\there",
    "new\nline and\r\nCRLF",
    "back\\slash and \\N and \\t",
    "\\N",
    "ünïcødé ☃ 𝄞",
    "{braces} and {0}",
    "\x01\x1f control",
    "ends with a backslash\\",
    "\uffff",
]


@pytest.fixture(autouse=True)
def _export_root(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_ROOT = str(tmp_path / "exports")


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with scratch_postgres("identity_export_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = f"sqlite:///{tmp_path / 'connected.sqlite3'}"
        with open_database(path, create=True):
            pass
        return path
    url: str = request.getfixturevalue("postgres_database")
    with open_database(url) as db:
        db.execute("DROP TABLE IF EXISTS odd_values, odd_json, mixed_rows")
        db.execute("DROP TABLE IF EXISTS listening_events, playlists, followed_artists, devices, invoices")
    return url


def odd_subject() -> SubjectRef:
    return SubjectRef(user_id=ODD_ID, email_index="0" * 64, data_key_id=uuid.uuid4())


ODD_DATASET = {
    "format": 1,
    "system": "oddities",
    "description": {
        "summary": "Values that are hard to carry: every type, NULLs, escapes, separators.",
        "purposes": [{"purpose": "test the export", "lawful_basis": "contract"}],
        "recipients": ["nobody"],
        "retention": "none",
        "sources": ["the tests"],
    },
    "connection": {"url_env": "ODDITIES_DATABASE_URL"},
    "tables": [
        {
            "name": "odd_values",
            "identity": {"column": "user_id", "matches": "user_id", "category": "account"},
            "category": "usage",
            "personal_fields": {
                "label": "usage",
                "note": "usage",
                "at": "usage",
                "naive_at": "usage",
                "day": "usage",
                "clock": "usage",
                "clock_tz": "usage",
                "amount": "usage",
                "ratio": "usage",
                "flag": "usage",
                "big": "usage",
                "small": "usage",
                "token": "usage",
                "blob": "usage",
            },
            "other_fields": ["id"],
            "erasure": {"action": "delete_row"},
            "order_by": ["id"],
        },
        {
            "name": "odd_json",
            "identity": {"column": "user_id", "matches": "user_id", "category": "account"},
            "category": "consent",
            "personal_fields": {"doc": "consent", "label": "consent"},
            "other_fields": ["id"],
            "erasure": {"action": "delete_row"},
        },
    ],
}
PG_TABLES = (
    "CREATE TABLE odd_values (id BIGINT PRIMARY KEY, user_id TEXT, label TEXT, note VARCHAR(200), at TIMESTAMPTZ,"
    " naive_at TIMESTAMP, day DATE, clock TIME, clock_tz TIMETZ, amount NUMERIC(12, 3), ratio DOUBLE PRECISION,"
    " flag BOOLEAN, big BIGINT, small SMALLINT, token UUID, blob BYTEA)",
    "CREATE TABLE odd_json (id INTEGER PRIMARY KEY, user_id TEXT, doc JSONB, label TEXT)",
)
LITE_TABLES = (
    "CREATE TABLE odd_values (id INTEGER PRIMARY KEY, user_id TEXT, label TEXT, note TEXT, at TEXT, naive_at TEXT,"
    " day TEXT, clock TEXT, clock_tz TEXT, amount TEXT, ratio REAL, flag BOOLEAN, big INTEGER, small INTEGER,"
    " token TEXT, blob BLOB)",
    "CREATE TABLE odd_json (id INTEGER PRIMARY KEY, user_id TEXT, doc TEXT, label TEXT)",
)
TIMES = [
    "2025-03-14 12:34:56.789+00",
    "2025-03-14 12:34:56+00",
    "2024-02-29 23:59:59.000001+00",
    "0044-03-15 12:00:00+00 BC",
    "infinity",
    "-infinity",
    "12025-01-01 00:00:00+00",
]


def fill(url: str, rows: int) -> None:
    postgres = url.startswith("postgres")
    with open_database(url) as db, db.transaction():
        for statement in PG_TABLES if postgres else LITE_TABLES:
            db.execute(statement)
        values = []
        for i in range(rows):
            text = TEXTS[i % len(TEXTS)]
            at = TIMES[i % len(TIMES)]
            values.append(
                (
                    i + 1,
                    ODD_ID if i % 5 else "someone-else",
                    None if i % 7 == 3 else text,
                    TEXTS[(i + 3) % len(TEXTS)] if i % 4 else None,
                    None if i % 11 == 5 else at,
                    None if i % 13 == 6 else at.replace("+00", ""),
                    None if i % 6 == 1 else ("2025-03-14" if i % 3 else "0200-01-01 BC" if postgres else "0200-01-01"),
                    "12:34:56.5" if i % 2 else "00:00:00",
                    "12:34:56+00" if i % 2 else "23:00:00.25+00",
                    None if i % 8 == 2 else f"{i * 1.5:.3f}",
                    [0.1, 1e300, -2.5, None, 3.0][i % 5],
                    None if i % 9 == 4 else bool(i % 2),
                    2**62 + i,
                    -i,
                    None if i % 10 == 7 else str(uuid.UUID(int=i)),
                    None if i % 3 == 2 else bytes([i % 256, 0, 92, 10]),
                )
            )
        db.executemany(f"INSERT INTO odd_values VALUES ({', '.join('?' * 16)})", values)
        docs = [
            (1, ODD_ID, json.dumps({"a": [1, 2], "b": {"c": "d, e"}, "": None}), "x"),
            (2, ODD_ID, json.dumps([]), None),
            (3, ODD_ID, json.dumps("text"), 'say "hi"'),
        ]
        db.executemany("INSERT INTO odd_json VALUES (?, ?, ?, ?)", docs)


def test_export_batches_give_exactly_the_records_of_export(database_url: str) -> None:
    """COPY (PostgreSQL) and the bigger batches give the values the named cursor gives, in order; a
    table with a type COPY is not used for (jsonb) goes through the named cursor."""
    fill(database_url, 600)
    system = SqlDataSystem(parse_dataset(ODD_DATASET), database_url=database_url)
    subject = odd_subject()

    expected = [(r.category, r.source, r.values) for r in system.export(subject)]
    batches = list(system.export_batches(subject))
    got = [(r.category, r.source, r.values) for batch in batches for r in batch.records()]

    assert len(expected) == 480 + 3
    assert got == expected
    assert [type(v) for v in got[1][2].values()] == [type(v) for v in expected[1][2].values()]
    assert {b.source for b in batches} == {"oddities.odd_values", "oddities.odd_json"}
    if database_url.startswith("postgres"):
        at = {r[2]["at"] for r in expected if r[1] == "oddities.odd_values"}
        assert {"2025-03-14T12:34:56.789+00:00", "0044-03-15T12:00:00+00:00 BC", "infinity", None} <= at


def test_export_batches_stream_the_demo_history_in_flat_memory(database_url: str) -> None:
    streaming_demo.create_schema(database_url)
    streaming_demo.seed_events(database_url, ODD_ID, 60_000, seed=3)
    system = streaming_demo.system(database_url)

    tracemalloc.start()
    try:
        counts = [batch.count for batch in system.export_batches(odd_subject())]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sum(counts) == 60_000 and max(counts) == 10_000
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming"  # holding them all: ~60 MB


# --- The ZIP: the same files as one record at a time --------------------------------------------------


def reference_members(records: list[Record]) -> dict[str, bytes]:
    """The category files as writing one record at a time gives them: one JSON object per record; one
    csv.writer row per record, its source and then every field of the category in the order first
    met (empty where the record has no such field)."""
    members: dict[str, bytes] = {}
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
    strict = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False).encode
    for category in sorted({r.category for r in records}):
        items = [
            json.loads(encode({"source": r.source, "values": r.values})) for r in records if r.category == category
        ]
        lines = [strict(exports._finite(item)) for item in items]  # strict JSON: NaN as "NaN"
        members[f"{category}.json"] = ("[\n" + ",\n".join(lines) + "\n]\n").encode()
        text = io.StringIO(newline="")
        out = csv.writer(text)
        columns = list(dict.fromkeys(field for item in items for field in item["values"]))
        out.writerow(["source", *columns])
        for item in items:
            shown = [item["values"].get(field) for field in columns]
            out.writerow([item["source"], *(_csv_shown(v) for v in shown)])
        members[f"{category}.csv"] = text.getvalue().encode()
    return members


def _csv_shown(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def assembled(request_id: uuid.UUID, key_id: uuid.UUID) -> dict[str, bytes]:
    description = Description("s", ("p",), ("contract",), ("usage",), ("r",), "none", ("x",))
    path, _ = exports.assemble(request_id, key_id, [description])
    data = b"".join(exports.read_encrypted(path, context=f"compliance.export.{request_id}"))
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def odd_records() -> list[Record]:
    records = []
    for i in range(12_000):
        text = TEXTS[i % len(TEXTS)]
        values: dict[Any, Any] = {
            "id": i,
            "label": text,
            "maybe": None if i % 3 else text,
            "ratio": [0.5, float("nan"), 1e-7, float("inf"), 2.0][i % 5],
            "flag": bool(i % 2),
            "when": uuid.UUID(int=i) if i % 4 == 0 else f"2025-01-01T00:00:{i % 60:02d}+00:00",
        }
        records.append(Record("usage", "odd.things", values))
        if i % 1000 == 0:  # another source, other columns, nested values, odd keys
            nested = {"list": [1, "two, 2", None], "object": {"k": 'v "q"'}, "empty": [], "one": [1]}
            odd_keys: dict[Any, Any] = {"doc": nested, 7: "seven", None: True, "x": []}
            records.append(Record("usage", "odd.others", odd_keys))
            records.append(Record("contact", "odd.nothing", {}))
            records.append(Record("contact", "odd.contact", {"email": f"person{i}@example.test", "{0}": "{1}"}))
    return records


@pytest.mark.django_db
def test_the_zip_holds_what_one_record_at_a_time_gave(tmp_path: Path) -> None:
    """Records (gathered into lines), batches and parts written by the earlier version (one line per
    record) assemble into the same JSON and CSV files, byte for byte, as before."""
    key_id = keystore.create_key()
    records = odd_records()
    expected = reference_members(records)

    from_records = uuid.uuid4()
    counts = exports.write_parts(from_records, "odd", key_id, iter(records))
    assert counts == {"usage": 12_012, "contact": 24}

    from_batches = uuid.uuid4()
    usage = [r for r in records if r.source == "odd.things"]
    columns = tuple(usage[0].values)
    batches: list[Record | RecordBatch] = []
    for start in range(0, len(usage), 7_000):
        flat = [v for r in usage[start : start + 7_000] for v in r.values.values()]
        batches.append(RecordBatch("usage", "odd.things", columns, flat))
    batches.append(RecordBatch("usage", "odd.things", columns, []))
    exports.write_parts(from_batches, "odd", key_id, iter(batches))

    legacy = uuid.uuid4()
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
    for category in ("usage", "contact"):
        writer = exports.EncryptedWriter(
            exports.part_path(legacy, "odd", category, ".jsonl.enc"),
            key_id=key_id,
            context=exports.part_context(legacy, "odd", category),
        )
        for r in records:
            if r.category == category:
                writer.write(encode({"source": r.source, "values": r.values}).encode() + b"\n")
        writer.close()

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    for request_id in (from_records, legacy):
        members = assembled(request_id, key_id)
        assert {n: members[n] for n in expected} == expected
        # Strict JSON (RFC 8259): the NaN and the infinities of the records are strings.
        ratios = {item["values"].get("ratio") for item in json.loads(members["usage.json"], parse_constant=refuse)}
        assert {"NaN", "Infinity"} <= ratios
        schema = ["schema/about-this-export.schema.json", "schema/category.schema.json", "schema/README.md"]
        assert sorted(members) == sorted([*expected, "about-this-export.json", "index.html", *schema])
    assert assembled(from_batches, key_id)["usage.json"] == reference_members(usage)["usage.json"]
    assert not list((Path(exports.export_root()) / str(from_records) / "parts").iterdir())


@pytest.mark.django_db
def test_a_category_from_an_earlier_versions_part_and_this_ones_gives_the_same_files() -> None:
    """During a rolling deploy one system's part may come from a worker of the earlier version (values,
    ``.jsonl.enc``) and another's from this one (text): the CSV's header is the fields of both, each
    row placed under it, as one record at a time gives."""
    key_id = keystore.create_key()
    request_id = uuid.uuid4()
    records = odd_records()
    usage = [r for r in records if r.category == "usage"]
    things = [r for r in usage if r.source == "odd.things"][:2_500]
    others = [r for r in usage if r.source == "odd.others"]
    exports.write_parts(request_id, "a-new", key_id, iter(others))
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
    writer = exports.EncryptedWriter(
        exports.part_path(request_id, "b-old", "usage", ".jsonl.enc"),
        key_id=key_id,
        context=exports.part_context(request_id, "b-old", "usage"),
    )
    for r in things:
        writer.write(encode({"source": r.source, "values": r.values}).encode() + b"\n")
    writer.close()

    members = assembled(request_id, key_id)

    expected = reference_members([*others, *things])
    assert members["usage.json"] == expected["usage.json"]
    assert members["usage.csv"] == expected["usage.csv"]
    assert members["usage.csv"].startswith(b"source,doc,7,null,x,id,label,maybe,ratio,flag,when\r\n")


@pytest.mark.django_db
def test_a_missing_part_gives_no_zip_rather_than_one_with_data_missing() -> None:
    """The counts the systems reported are checked against the parts read: a part that is not there
    (or that this version cannot read) fails the assembly; no ZIP is kept, the other parts stay."""
    key_id = keystore.create_key()
    request_id = uuid.uuid4()
    records = odd_records()
    reported = exports.write_parts(request_id, "odd", key_id, iter(records))
    parts = Path(exports.export_root()) / str(request_id) / "parts"
    (parts / "odd__contact.json.enc").unlink()

    with pytest.raises(exports.IncompleteExport, match="contact"):
        exports.assemble(request_id, key_id, [], reported)

    assert not list((Path(exports.export_root()) / str(request_id)).glob("export-*"))
    left = sorted(p.name for p in parts.iterdir())
    assert left == [
        "odd__contact.csv.enc",
        "odd__contact.index.enc",
        *(f"odd__usage.{k}.enc" for k in ("csv", "index", "json")),
    ]
    path, _ = exports.assemble(request_id, key_id, [], {"usage": reported["usage"]})
    assert path.exists()


@pytest.mark.django_db
def test_a_batch_of_a_killed_export_leaves_no_part(tmp_path: Path) -> None:
    """Idempotent: a part is renamed into place only when its system's records are all written."""
    key_id = keystore.create_key()
    request_id = uuid.uuid4()

    def failing() -> Iterator[RecordBatch]:
        yield RecordBatch("usage", "odd.things", ("a", "b"), [1, "x", 2, "y"])
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        exports.write_parts(request_id, "odd", key_id, failing())
    assert not list((Path(exports.export_root()) / str(request_id) / "parts").iterdir())
    exports.write_parts(request_id, "odd", key_id, iter([RecordBatch("usage", "odd.things", ("a", "b"), [1, "x"])]))
    assert assembled(request_id, key_id)["usage.csv"] == b"source,a,b\r\nodd.things,1,x\r\n"


# --- Parts holding COPY's text (PostgreSQL): the same files ---------------------------------------------

MIXED_DATASET = {
    **ODD_DATASET,
    "system": "mixed",
    "tables": [
        {
            "name": "mixed_rows",
            "identity": {"column": "user_id", "matches": "user_id", "category": "account"},
            "category": "usage",
            "personal_fields": {"label": "usage", "at": "usage", "n": "usage"},
            "other_fields": ["id"],
            "erasure": {"action": "delete_row"},
            "order_by": ["id"],
        },
        {  # jsonb: through the named cursor, into the same part as the COPY text
            **next(t for t in ODD_DATASET["tables"] if t["name"] == "odd_json"),
            "category": "usage",
            "personal_fields": {"doc": "usage", "label": "usage"},
        },
    ],
}
# One kind of text per batch of 50 rows, so that each of the checks over a whole batch is taken and
# missed: plain ASCII, other scripts, commas, quotes, NULLs, COPY escapes, U+FFFF and control characters.
MIXED_GROUPS = [
    lambda i: f"title {i}",
    lambda i: f"ünïcødé ☃ 𝄞 {i}",
    lambda i: f"comma, {i}",
    lambda i: f'say "{i}"',
    lambda i: None if i % 2 else f"maybe {i}",
    lambda i: TEXTS[i % len(TEXTS)],
    lambda i: f"\uffff{i}\x01",
    lambda i: f"tab\t{i}" if i % 3 else f"plain {i}",
]


def fill_mixed(url: str) -> None:
    fill(url, 30)  # odd_json (and odd_values, not exported here)
    postgres = url.startswith("postgres")
    with open_database(url) as db, db.transaction():
        db.execute(
            "CREATE TABLE mixed_rows (id BIGINT PRIMARY KEY, user_id TEXT, label TEXT, at TIMESTAMPTZ, n INTEGER)"
            if postgres
            else "CREATE TABLE mixed_rows (id INTEGER PRIMARY KEY, user_id TEXT, label TEXT, at TEXT, n INTEGER)"
        )
        rows = []
        for i in range(50 * len(MIXED_GROUPS)):
            group = i // 50
            at = TIMES[i % len(TIMES)] if group == 7 else f"2025-03-{1 + i % 28:02d} 12:00:{i % 60:02d}+00"
            n = None if group == 4 and i % 3 == 0 else i * 7 - 100
            rows.append((i + 1, ODD_ID, MIXED_GROUPS[group](i), None if group == 4 and i % 5 == 0 else at, n))
        db.executemany("INSERT INTO mixed_rows VALUES (?, ?, ?, ?, ?)", rows)


@pytest.mark.django_db
def test_parts_of_copy_text_give_the_zip_one_record_at_a_time_gave(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the export task writes (COPY's text on PostgreSQL, kept unparsed in the parts; batches
    on SQLite), in a part beside lines of another table, assembles into the files of the records one
    at a time, byte for byte."""
    monkeypatch.setattr(sql, "EXPORT_BATCH", 50)
    fill_mixed(database_url)
    system = SqlDataSystem(parse_dataset(MIXED_DATASET), database_url=database_url, fetch_size=1)
    subject = odd_subject()
    key_id = keystore.create_key()
    records = list(system.export(subject))
    copied = list(exports.records_of(system, subject))

    request_id = uuid.uuid4()
    counts = exports.write_parts(request_id, system.name, key_id, iter(copied))

    assert counts == {"usage": 400 + 3}
    kinds = {type(item).__name__ for item in copied}
    assert kinds == ({"CopyBatch", "RecordBatch"} if database_url.startswith("postgres") else {"RecordBatch"})
    assert [item.count for item in copied] == [50] * 8 + [3]
    members = assembled(request_id, key_id)
    assert {n: members[n] for n in ("usage.json", "usage.csv")} == reference_members(records)


@pytest.mark.django_db
def test_a_failed_zip_leaves_the_parts_for_the_next_try(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while a member is compressed (in the worker thread) is raised, not lost, and the parts
    stay, so that the task can assemble again."""
    key_id = keystore.create_key()
    request_id = uuid.uuid4()
    exports.write_parts(request_id, "odd", key_id, iter(odd_records()))

    class DiskFull:
        def compress(self, data: bytes) -> bytes:
            raise OSError("no space left on device")

        def flush(self) -> bytes:
            return b""

    with monkeypatch.context() as patched:
        patched.setattr(exports.zlib_ng, "compressobj", lambda *args: DiskFull())
        with pytest.raises(OSError, match="no space left"):
            exports.assemble(request_id, key_id, [])
    parts = Path(exports.export_root()) / str(request_id) / "parts"
    assert sorted(p.name for p in parts.iterdir()) == [
        f"odd__{category}.{kind}.enc" for category in ("contact", "usage") for kind in ("csv", "index", "json")
    ]

    expected = reference_members(odd_records())
    members = assembled(request_id, key_id)
    assert {n: members[n] for n in expected} == expected


@pytest.mark.parametrize("size", [0, 1, 100_000, 3 * 1024 * 1024 + 17])
def test_zip_members_are_compressed_by_zlib_ng(size: int) -> None:
    """The members' DEFLATE comes from zlib-ng, in blocks on several threads (the export's speed,
    docs/benchmarks.md), and the standard zipfile reads it back: one valid DEFLATE stream, whatever
    the size (empty, one block, several and a partial one)."""
    buffer = io.BytesIO()
    text = b"".join(f"listening_events,{i},track {i % 97}\r\n".encode() for i in range(200_000))[:size]
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        exports._open_member(archive, "x.csv") as member,
    ):
        assert type(member._compressor) is exports._ParallelDeflate  # type: ignore[attr-defined]
        for start in range(0, size, 300_000):  # writes that do not fall on block boundaries
            member.write(text[start : start + 300_000])
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert archive.read("x.csv") == text
        assert archive.testzip() is None
        if size > 100_000:
            assert archive.getinfo("x.csv").compress_size < len(text) / 4
