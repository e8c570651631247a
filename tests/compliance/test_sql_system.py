"""Connected SQL databases described by a dataset file (issue #4, "Fulfilment across data systems").

Issue #4: "external SQL databases are described declaratively (connection, tables, the identity
column, personal fields with categories, and per table or field: delete row, null, pseudonymise, or
keep under a named legal exception)"; export "streamed from server-side cursors so memory stays flat
whatever the history size"; "data kept under a legal exception is minimised and listed in the answer
to the subject"; "after erasure, the access query is run again for every system and must find
nothing; that read-back is part of the evidence".

REGULATIONS.md: G-15 (access: purposes, categories, recipients, retention, sources), G-17 (erasure;
what is kept carries an Art. 17(3) exception code), G-20 (portability: listening history and
playlists, none of another listener's data), C-14 (deletion by erasure or deidentification), C-16
(what may be kept), C-17 (kept data carries a §1798.105(d) exception number 1..8).

Every test that touches a database runs on SQLite and, with DATABASE_URL=postgresql://..., on a
throw-away PostgreSQL database ``identity_streaming_test_<random>``.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import shutil
import sqlite3
import subprocess
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from compliance.systems import sql, streaming_demo
from compliance.systems.base import Kept, SubjectRef
from compliance.systems.sql import DatasetError, SqlDataSystem, load_dataset, open_database, parse_dataset, pseudonym
from identity.crypto.blind import blind_index, email_index
from tests.compliance.scratch_database import scratch_postgres

ALICE_ID = "5a1ce000-0000-4000-8000-00000000a11c"
CHARLIE_ID = "c4a71e00-0000-4000-8000-0000000c4a71"
EVENTS = 40  # per listener in the small fixtures
SYSTEM = "streaming_history"
SOURCES = [f"{SYSTEM}.{t}" for t in streaming_demo.TABLES]
INVOICE_EXCEPTION = (
    "GDPR Art. 17(3)(b); CCPA Civ. Code §1798.105(d)(8): invoices must be kept for tax audits for 10 years "
    "after the end of the year of issue (tax law); kept only as date and amount, no longer linked to the account"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def subject(user_id: str, email: str) -> SubjectRef:
    return SubjectRef(user_id=user_id, email_index=email_index(email), data_key_id=uuid.uuid4(), email=email)


@pytest.fixture
def alice_ref() -> SubjectRef:
    return subject(ALICE_ID, "alice@example.test")


@pytest.fixture
def charlie_ref() -> SubjectRef:
    return subject(CHARLIE_ID, "charlie@example.test")


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for the streaming tables, dropped afterwards."""
    with scratch_postgres("identity_streaming_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def streaming_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty streaming database with the demo schema, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'streaming.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_database")
        streaming_demo.drop_schema(url)
    streaming_demo.create_schema(url)
    return url


@pytest.fixture
def seeded(streaming_url: str) -> str:
    """Alice and Charlie with a little of everything."""
    result = streaming_demo.seed(streaming_url, [ALICE_ID, CHARLIE_ID], events_per_user=EVENTS, seed=7)
    assert result.seeded == [ALICE_ID, CHARLIE_ID]
    return streaming_url


def all_rows(url: str, table: str) -> dict[Any, dict[str, Any]]:
    """Every row of a table, by id."""
    with open_database(url) as db:
        columns = db.columns(table)
        rows: dict[Any, dict[str, Any]] = {}
        for batch in db.stream(f"SELECT * FROM {table} ORDER BY id"):
            for row in batch:
                values = dict(zip(columns, row, strict=True))
                rows[values["id"]] = values
        return rows


def snapshot(url: str) -> dict[str, dict[Any, dict[str, Any]]]:
    return {table: all_rows(url, table) for table in streaming_demo.TABLES}


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(streaming_demo.DATASET_PATH.read_text(encoding="utf-8"))
    return data


# --- The dataset file ---------------------------------------------------------------------------


def test_the_shipped_dataset_describes_the_system_for_an_access_answer() -> None:
    """G-15 (a)-(d), (g): purposes, categories, recipients, retention and sources come from the file;
    each purpose has one Art. 6(1) basis (G-01)."""
    system = streaming_demo.system("sqlite:///unused.sqlite3")
    description = system.describe()

    assert system.name == SYSTEM
    assert description.name == SYSTEM
    assert len(description.purposes) == 4
    assert description.lawful_bases == ("contract", "legitimate_interests", "consent", "legal_obligation")
    assert description.categories == ("account", "consent", "contact", "identity", "location", "security", "usage")
    assert description.recipients[0].startswith("ExampleCloud Hosting (processor")
    assert "invoices: 10 years" in description.retention
    assert description.sources == (
        "the listener (playlists, followed artists)",
        "the listener's apps (listening events and devices, observed while the listener uses the service)",
        "the payment processor (invoices)",
    )
    actions = {t.name: t.action.value for t in system.dataset.tables}
    assert actions == {
        "listening_events": "delete_row",
        "playlists": "pseudonymise",
        "followed_artists": "delete_row",
        "devices": "null",
        "invoices": "keep",
        "listener_settings": "delete_row",
    }


def _set(path: str, value: Any) -> Any:
    """A change to the shipped dataset: set (or, with value ..., delete) the key at a dotted path."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


INVALID = [
    ("system", ..., "system: required"),
    (
        "tabels",
        [],
        "tabels: unknown key (expected one of: choices, connection, description, format, notes, system, tables)",
    ),
    ("format", 2, "format: must be 1, not 2"),
    ("description.recipients", [], "description.recipients: must not be empty"),
    ("description.purposes.0.lawful_basis", "vibes", "description.purposes[0].lawful_basis: must be one of consent,"),
    ("connection.url_env", "streaming url", "connection.url_env: must be an environment variable name"),
    (
        "tables.0.personal_fields.played_at",
        "favourite_colour",
        "tables[0] (listening_events).personal_fields.played_at: must be one of identity, contact,",
    ),
    ("tables.0.identity.matches", "phone", "tables[0] (listening_events).identity.matches: must be one of user_id,"),
    ("tables.0.erasure.action", "shred", "tables[0] (listening_events).erasure.action: shred needs per-subject keys"),
    ("tables.0.erasure.action", "forget", "tables[0] (listening_events).erasure.action: must be one of delete_row,"),
    (
        "tables.0.name",
        'listening_events"; DROP TABLE devices; --',
        "tables[0].name: must be an SQL identifier",
    ),
    ("tables.0.identity.column", "user_id OR 1=1", "tables[0] (listening_events).identity.column: must be an SQL"),
    ("tables.0.order_by", ["played_at; DROP TABLE x"], "tables[0] (listening_events).order_by[0]: must be an SQL"),
    (
        "tables.0.personal_fields.user_id",
        "account",
        "tables[0] (listening_events).personal_fields.user_id: is the identity column",
    ),
    (
        "tables.0.personal_fields.device_name",
        {"category": "security", "erasure": "null"},
        "tables[0] (listening_events).personal_fields.device_name.erasure: the table's action delete_row",
    ),
    (
        "tables.1.personal_fields.name",
        {"category": "usage", "erasure": "keep"},
        "tables[1] (playlists).personal_fields.name.erasure: must be one of null, pseudonymise",
    ),
    ("tables.2.erasure.exception", "because", "tables[2] (followed_artists).erasure.exception: only with action keep"),
    ("tables.4.erasure.exception", ..., "tables[4] (invoices).erasure.exception: required with action keep"),
    ("tables.4.erasure.gdpr_exception", ..., "tables[4] (invoices).erasure.gdpr_exception: required with action keep"),
    ("tables.4.erasure.gdpr_exception", "17(3)(z)", "tables[4] (invoices).erasure.gdpr_exception: must be one of"),
    ("tables.4.erasure.ccpa_exception", 9, "tables[4] (invoices).erasure.ccpa_exception: must be an exception number"),
    (
        "tables.4.erasure.keep_fields",
        ["currency"],
        "tables[4] (invoices).erasure.keep_fields[0]: 'currency' is not one of the table's personal fields",
    ),
    ("tables.4.erasure.keep_feilds", ["issued_at"], "tables[4] (invoices).erasure.keep_feilds: unknown key"),
    ("tables.1.name", "listening_events", "tables[1].name: table 'listening_events' is described twice"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[f"{p}={v!r}"[:60] for p, v, _ in INVALID])
def test_a_wrong_dataset_is_refused_naming_the_bad_key(path: str, value: Any, message: str) -> None:
    """Issue #4: the dataset is validated with clear errors naming the bad key (and the file)."""
    data = copy.deepcopy(shipped())
    _set(path, value)(data)

    with pytest.raises(DatasetError) as caught:
        parse_dataset(data, origin="streaming_history.json")

    assert str(caught.value).startswith(f"streaming_history.json: {message}")


def test_a_dataset_file_that_is_not_json_is_refused_with_its_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{\n  "format": 1,\n  "system": streaming\n}\n', encoding="utf-8")

    with pytest.raises(DatasetError, match=r"broken.json: not valid JSON: Expecting value at line 3, column 13"):
        load_dataset(file)


def test_the_connection_comes_from_the_setting_the_dataset_names(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The URL is read from STREAMING_DATABASE_URL (setting, else environment), else the development default."""
    dataset = streaming_demo.dataset()
    settings.STREAMING_DATABASE_URL = "postgresql://compliance@streaming.test:5432/streaming"
    assert SqlDataSystem(dataset).database_url == "postgresql://compliance@streaming.test:5432/streaming"

    del settings.STREAMING_DATABASE_URL
    monkeypatch.setenv("STREAMING_DATABASE_URL", "sqlite:////tmp/from-env.sqlite3")
    assert SqlDataSystem(dataset).database_url == "sqlite:////tmp/from-env.sqlite3"

    monkeypatch.delenv("STREAMING_DATABASE_URL")
    assert SqlDataSystem(dataset).database_url == "sqlite:///var/streaming.sqlite3"

    data = shipped()
    del data["connection"]["default_url"]
    with pytest.raises(DatasetError, match="connection.url_env: STREAMING_DATABASE_URL is not set"):
        _ = SqlDataSystem(parse_dataset(data, origin="x.json")).database_url


def test_an_unsupported_database_url_is_refused(alice_ref: SubjectRef) -> None:
    system = streaming_demo.system("mysql://root@db.test/streaming")
    with pytest.raises(DatasetError, match="database URL scheme 'mysql' is not supported"):
        system.read_back(alice_ref)


def test_a_missing_sqlite_file_fails_loudly_and_is_not_created(tmp_path: Path, alice_ref: SubjectRef) -> None:
    """A wrong path must not read back as an empty, "clean" database (issue #4: read-back is evidence)."""
    missing = tmp_path / "nowhere" / "streaming.sqlite3"
    system = streaming_demo.system(f"sqlite:///{missing}")

    with pytest.raises(DatasetError, match=f"the SQLite database {missing} does not exist"):
        system.read_back(alice_ref)
    with pytest.raises(DatasetError):
        list(system.export(alice_ref))
    assert not missing.parent.exists()


def test_settings_connect_the_shipped_dataset(settings) -> None:  # type: ignore[no-untyped-def]
    """CONNECTED_DATASETS lists the dataset files; relative paths are relative to the project."""
    assert [s.name for s in sql.load_systems()] == [SYSTEM]
    assert django_settings.STREAMING_DATABASE_URL

    settings.CONNECTED_DATASETS = ["compliance/systems/datasets/streaming_history.json"]
    assert [s.dataset.origin for s in sql.load_systems()] == ["streaming_history.json"]


# --- Export ----------------------------------------------------------------------------------------


def test_export_yields_every_table_of_the_subject_and_nothing_of_another(
    seeded: str, alice_ref: SubjectRef, charlie_ref: SubjectRef
) -> None:
    """G-15, G-20: the listening history, playlists, follows, devices and invoices, each record with
    its category and source; not one value of Charlie's; the identity column is not repeated."""
    system = streaming_demo.system(seeded)

    records = list(system.export(alice_ref))

    assert Counter(r.source for r in records) == {
        f"{SYSTEM}.listening_events": EVENTS,
        f"{SYSTEM}.playlists": 3,
        f"{SYSTEM}.followed_artists": 4,
        f"{SYSTEM}.devices": 2,
        f"{SYSTEM}.invoices": 3,
        f"{SYSTEM}.listener_settings": 1,
    }
    assert [r.source for r in records] == sorted((r.source for r in records), key=lambda s: SOURCES.index(s))
    categories = {r.source: r.category for r in records}
    assert categories == {
        f"{SYSTEM}.listening_events": "usage",
        f"{SYSTEM}.playlists": "usage",
        f"{SYSTEM}.followed_artists": "usage",
        f"{SYSTEM}.devices": "security",
        f"{SYSTEM}.invoices": "account",
        f"{SYSTEM}.listener_settings": "consent",
    }
    events = [r.values for r in records if r.source.endswith("listening_events")]
    assert list(events[0]) == [
        "id",
        "track_id",
        "track_title",
        "artist",
        "context",
        "played_at",
        "ms_played",
        "device_name",
        "ip_country",
    ]
    assert [e["played_at"] for e in events] == sorted(e["played_at"] for e in events)
    assert all(isinstance(e["played_at"], str) and e["played_at"].endswith("+00:00") for e in events)
    invoice = next(r.values for r in records if r.source.endswith("invoices"))
    tag = streaming_demo._tag(ALICE_ID)
    assert invoice["billing_name"] == f"Demo Listener {tag}"
    assert invoice["billing_email"] == f"listener-{tag}@billing.invalid"

    all_values = {v for r in records for v in r.values.values()}
    assert ALICE_ID not in all_values
    charlie_ids = {
        table: {row["id"] for row in all_rows(seeded, table).values() if CHARLIE_ID in row.values()}
        for table in streaming_demo.TABLES
    }
    for record in records:
        assert record.values["id"] not in charlie_ids[record.source.split(".")[1]]
    charlie_tag = streaming_demo._tag(CHARLIE_ID)
    assert not [v for v in all_values if isinstance(v, str) and charlie_tag in v.lower()]
    assert sum(1 for _ in system.export(charlie_ref)) == EVENTS + 3 + 4 + 2 + 3 + 1


def test_export_has_no_lookback_limit_c10(seeded: str, alice_ref: SubjectRef) -> None:
    """C-10: a request to know covers at least the 12 months before receipt, and on request back to
    1 January 2022. The export has no lower bound at all: every retained record, whatever its age,
    so the "all data" choice is the only one and always made (README, "Privacy requests")."""
    with open_database(seeded) as db, db.transaction():
        db.execute(
            "INSERT INTO listening_events (user_id, track_id, track_title, artist, context, played_at, ms_played, "
            "device_name, ip_country) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [ALICE_ID, "trk-old", "An old favourite", "Someone", "album", "2022-01-02 08:00:00+00", 1000, "x", "DE"],
        )
    records = list(streaming_demo.system(seeded).export(alice_ref))
    old = [r.values for r in records if r.values.get("track_id") == "trk-old"]
    assert len(old) == 1 and str(old[0]["played_at"]).startswith("2022-01-02")


def test_export_of_someone_unknown_is_empty(seeded: str) -> None:
    assert list(streaming_demo.system(seeded).export(subject(str(uuid.uuid4()), "nobody@example.test"))) == []


# --- Erasure and read-back --------------------------------------------------------------------------


def test_erasure_applies_each_tables_action_exactly(
    seeded: str, alice_ref: SubjectRef, charlie_ref: SubjectRef
) -> None:
    """G-17, C-14, C-17: listening events and follows deleted; playlists pseudonymised (owner and
    title as keyed pseudonyms, description removed); devices unlinked and nulled; invoices kept under
    the named tax-law exception, minimised to date and amount. Charlie's rows do not change."""
    before = snapshot(seeded)
    system = SqlDataSystem(streaming_demo.dataset(), database_url=seeded, fetch_size=2)  # several pseudonym batches

    result = system.erase(alice_ref)

    after = snapshot(seeded)
    assert result.counts == {
        f"{SYSTEM}.listening_events": EVENTS,
        f"{SYSTEM}.playlists": 3,
        f"{SYSTEM}.followed_artists": 4,
        f"{SYSTEM}.devices": 2,
        f"{SYSTEM}.invoices": 3,
        f"{SYSTEM}.listener_settings": 1,
    }
    assert result.kept == [Kept(f"{SYSTEM}.invoices", 3, INVOICE_EXCEPTION, ("issued_at", "amount_cents"))]

    for table, owner in streaming_demo.IDENTITY_COLUMNS:
        alices = {i: row for i, row in before[table].items() if row[owner] == ALICE_ID}
        others = {i: row for i, row in before[table].items() if row[owner] != ALICE_ID}
        assert {i: after[table][i] for i in others} == others, f"{table}: Charlie's rows changed"
        expected: dict[Any, dict[str, Any]]
        if table in ("listening_events", "followed_artists", "listener_settings"):
            expected = {}
        elif table == "playlists":
            expected = {
                i: {**row, "owner_id": pseudonym(ALICE_ID), "name": pseudonym(row["name"]), "description": None}
                for i, row in alices.items()
            }
        elif table == "devices":
            nulled = ("user_id", "device_name", "push_token", "registered_at", "last_seen_at")
            expected = {i: {**row, **dict.fromkeys(nulled)} for i, row in alices.items()}
        else:
            expected = {
                i: {
                    **row,
                    "user_id": pseudonym(ALICE_ID),
                    "billing_name": None,
                    "billing_email": None,
                    "billing_address": None,
                }
                for i, row in alices.items()
            }
        assert {i: row for i, row in after[table].items() if i not in others} == expected, table
        assert len(alices) > 0

    devices = [row for row in after["devices"].values() if row["user_id"] is None]
    assert {(d["device_model"], d["os"]) for d in devices} <= set(streaming_demo.DEVICES)
    assert pseudonym(ALICE_ID) == blind_index(ALICE_ID, purpose="pseudonym")
    assert system.read_back(charlie_ref) == {
        f"{SYSTEM}.listening_events": EVENTS,
        f"{SYSTEM}.playlists": 3,
        f"{SYSTEM}.followed_artists": 4,
        f"{SYSTEM}.devices": 2,
        f"{SYSTEM}.invoices": 3,
        f"{SYSTEM}.listener_settings": 1,
    }


def test_erasure_is_idempotent(seeded: str, alice_ref: SubjectRef) -> None:
    """Issue #4: tasks are retried; erasing twice leaves the same state, with zero counts the second
    time, and still lists what is kept."""
    system = streaming_demo.system(seeded)
    first = system.erase(alice_ref)
    state = snapshot(seeded)

    second = system.erase(alice_ref)

    assert second.counts == dict.fromkeys(SOURCES, 0)
    assert second.kept == first.kept
    assert snapshot(seeded) == state


def test_read_back_finds_nothing_after_erasure_but_the_kept_minimised_rows(seeded: str, alice_ref: SubjectRef) -> None:
    """Issue #4: the access query runs again after erasure and finds nothing; the rows kept under a
    legal exception are reported apart, minimised (G-17 exception code, C-17 exception number)."""
    system = streaming_demo.system(seeded)
    assert system.read_back(alice_ref) == {
        f"{SYSTEM}.listening_events": EVENTS,
        f"{SYSTEM}.playlists": 3,
        f"{SYSTEM}.followed_artists": 4,
        f"{SYSTEM}.devices": 2,
        f"{SYSTEM}.invoices": 3,
        f"{SYSTEM}.listener_settings": 1,
    }
    assert system.kept(alice_ref) == []

    system.erase(alice_ref)

    assert system.read_back(alice_ref) == dict.fromkeys(SOURCES, 0)
    assert system.kept(alice_ref) == [Kept(f"{SYSTEM}.invoices", 3, INVOICE_EXCEPTION, ("issued_at", "amount_cents"))]
    remaining = list(system.export(alice_ref))
    assert {r.source for r in remaining} == {f"{SYSTEM}.invoices"}
    for record in remaining:
        assert record.values["billing_name"] is None
        assert record.values["billing_email"] is None
        assert record.values["billing_address"] is None
        assert record.values["amount_cents"] > 0 and record.values["issued_at"].startswith("2025-")


def test_read_back_counts_kept_rows_whose_dropped_fields_still_hold_values(seeded: str, alice_ref: SubjectRef) -> None:
    """Evidence cannot be faked by unlinking alone: a kept row that still has a billing e-mail counts."""
    system = streaming_demo.system(seeded)
    system.erase(alice_ref)
    with open_database(seeded) as db, db.transaction():
        db.execute(
            "UPDATE invoices SET billing_email = ? WHERE user_id = ?", ["leak@billing.invalid", pseudonym(ALICE_ID)]
        )

    assert system.read_back(alice_ref)[f"{SYSTEM}.invoices"] == 3


def test_erasure_is_all_or_nothing_per_table(seeded: str, alice_ref: SubjectRef, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """One transaction per table: a failure part-way through pseudonymising leaves that table as it
    was, and running the erasure again finishes the job."""
    before = snapshot(seeded)
    real_execute = sql.Database.execute

    def failing(self: sql.Database, statement: str, params: Any = ()) -> int:
        if statement.startswith('UPDATE "playlists" SET "owner_id"'):
            raise RuntimeError("connection lost")
        return real_execute(self, statement, params)

    monkeypatch.setattr(sql.Database, "execute", failing)
    system = SqlDataSystem(streaming_demo.dataset(), database_url=seeded, fetch_size=1)
    with pytest.raises(RuntimeError, match="connection lost"):
        system.erase(alice_ref)

    assert all_rows(seeded, "playlists") == before["playlists"]
    assert system.read_back(alice_ref)[f"{SYSTEM}.listening_events"] == 0  # the table before it committed
    monkeypatch.setattr(sql.Database, "execute", real_execute)
    assert system.erase(alice_ref).counts[f"{SYSTEM}.playlists"] == 3
    assert system.read_back(alice_ref) == dict.fromkeys(SOURCES, 0)


ODD_IDS = [
    "o'brien\"; DROP TABLE listening_events; --",
    "x' OR '1'='1",
    "%s?%(name)s\\",
]


@pytest.mark.parametrize("odd_id", ODD_IDS)
def test_subject_values_travel_as_parameters(seeded: str, odd_id: str) -> None:
    """A subject id full of quotes and placeholders matches exactly its own rows and nothing else."""
    streaming_demo.seed(seeded, [odd_id], events_per_user=5, seed=1)
    system = streaming_demo.system(seeded)
    odd = subject(odd_id, "odd@example.test")

    assert Counter(r.source for r in system.export(odd))[f"{SYSTEM}.listening_events"] == 5
    result = system.erase(odd)

    assert result.counts[f"{SYSTEM}.listening_events"] == 5
    assert system.read_back(odd) == dict.fromkeys(SOURCES, 0)
    assert streaming_demo.count_rows(seeded)["listening_events"] == 2 * EVENTS
    assert system.read_back(subject(ALICE_ID, "alice@example.test"))[f"{SYSTEM}.listening_events"] == EVENTS


NEWSLETTER = {
    "format": 1,
    "system": "newsletter",
    "description": {
        "summary": "The e-mail newsletter tool, which knows subscribers only by the blind index of their e-mail.",
        "purposes": [{"purpose": "send the newsletter the listener asked for", "lawful_basis": "consent"}],
        "recipients": ["ExampleMail (processor)"],
        "retention": "until unsubscribed",
        "sources": ["the listener"],
    },
    "connection": {"url_env": "NEWSLETTER_DATABASE_URL"},
    "tables": [
        {
            "name": "subscribers",
            "identity": {"column": "email_index", "matches": "email_index", "category": "contact"},
            "personal_fields": {"first_name": "identity", "topics": "consent"},
            "other_fields": ["id"],
            "erasure": {"action": "delete_row"},
        }
    ],
}


def test_a_table_keyed_by_the_email_blind_index(
    streaming_url: str, alice_ref: SubjectRef, charlie_ref: SubjectRef
) -> None:
    """identity.matches = email_index: systems that know people only by (the blind index of) e-mail."""
    with open_database(streaming_url) as db, db.transaction():
        db.execute("CREATE TABLE subscribers (id INTEGER PRIMARY KEY, email_index TEXT, first_name TEXT, topics TEXT)")
        db.executemany(
            "INSERT INTO subscribers (id, email_index, first_name, topics) VALUES (?, ?, ?, ?)",
            [(1, alice_ref.email_index, "Alice", "new releases"), (2, charlie_ref.email_index, "Charlie", "tours")],
        )
    system = SqlDataSystem(parse_dataset(NEWSLETTER), database_url=streaming_url)

    assert [(r.category, r.source, r.values) for r in system.export(alice_ref)] == [
        ("identity", "newsletter.subscribers", {"id": 1, "first_name": "Alice", "topics": "new releases"})
    ]
    assert system.erase(alice_ref).counts == {"newsletter.subscribers": 1}
    assert system.read_back(alice_ref) == {"newsletter.subscribers": 0}
    assert system.read_back(charlie_ref) == {"newsletter.subscribers": 1}
    assert system.describe().categories == ("consent", "contact", "identity")


def test_check_reports_where_the_dataset_and_the_schema_disagree(streaming_url: str) -> None:
    assert streaming_demo.system(streaming_url).check() == []
    data = shipped()
    data["tables"][0]["other_fields"].append("mood")
    data["tables"].append({**data["tables"][2], "name": "concerts"})

    problems = SqlDataSystem(parse_dataset(data), database_url=streaming_url).check()

    error = "UndefinedTable" if streaming_url.startswith("postgresql") else "OperationalError"
    assert problems == [
        "streaming_history.listening_events.mood: no such column",
        f"streaming_history.concerts: the table cannot be read ({error})",
    ]


# --- Streaming -------------------------------------------------------------------------------------


class SpyCursor(sqlite3.Cursor):
    batches: list[int] = []

    def fetchall(self) -> list[Any]:
        raise AssertionError("fetchall would hold the whole history in memory")

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = super().fetchmany(size) if size is not None else super().fetchmany()
        SpyCursor.batches.append(len(rows))
        return rows


class SpyConnection(sqlite3.Connection):
    def cursor(self, factory: Any = SpyCursor) -> Any:
        return super().cursor(factory)


def test_export_streams_50000_events_in_flat_memory(streaming_url: str, alice_ref: SubjectRef, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue #4: exports are streamed (PostgreSQL: a named, server-side cursor; SQLite: fetchmany), never
    fetchall, and memory stays flat: the peak while exporting 50,000 events is a small fraction of
    what holding them would take."""
    assert streaming_demo.seed_events(streaming_url, ALICE_ID, 50_000, seed=3) == 50_000
    system = streaming_demo.system(streaming_url)
    server_batches: list[int] = []
    if "postgres" in streaming_url:
        real_fetchmany = psycopg.ServerCursor.fetchmany

        def spy(self: psycopg.ServerCursor[Any], size: int = 0) -> list[Any]:
            rows = real_fetchmany(self, size)
            server_batches.append(len(rows))
            return rows

        def refuse(self: object) -> list[Any]:
            raise AssertionError("fetchall would hold the whole history in memory")

        monkeypatch.setattr(psycopg.ServerCursor, "fetchmany", spy)
        monkeypatch.setattr(psycopg.ServerCursor, "fetchall", refuse)
        monkeypatch.setattr(psycopg.Cursor, "fetchall", refuse)
    else:
        SpyCursor.batches = []
        monkeypatch.setattr(sql.sqlite3, "connect", functools.partial(sqlite3.connect, factory=SpyConnection))

    tracemalloc.start()
    try:
        count = sum(1 for record in system.export(alice_ref) if record.values["ms_played"] >= 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 50_000
    batches = server_batches or SpyCursor.batches
    assert sum(batches) == 50_000
    assert max(batches) == sql.FETCH_SIZE and len(batches) >= 50_000 // sql.FETCH_SIZE
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming"


# --- The whole-database dump after erasure -----------------------------------------------------------


@pytest.mark.postgres
def test_a_pg_dump_after_erasure_holds_none_of_the_subjects_values(
    postgres_database: str, alice_ref: SubjectRef, charlie_ref: SubjectRef
) -> None:
    """DESIGN.md requirement 1, G-17, C-14: after erasure a dump of the whole streaming database holds
    no value of Alice's but the kept invoice dates and amounts; the kept rows hold no name or e-mail."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("SKIPPED: pg_dump is not installed")
    url = postgres_database
    streaming_demo.drop_schema(url)
    streaming_demo.seed(url, [ALICE_ID, CHARLIE_ID], events_per_user=EVENTS, seed=11)
    system = streaming_demo.system(url)
    kept_columns = {"issued_at", "amount_cents"}
    personal = {t.name: {f.name for f in t.personal_fields} - kept_columns for t in system.dataset.tables}
    charlie_values = {str(v) for r in system.export(charlie_ref) for v in r.values.values()}
    alice_values = {
        str(v)
        for r in system.export(alice_ref)
        for k, v in r.values.items()
        if k in personal[r.source.split(".")[1]] and isinstance(v, str) and len(v) >= 6
    } - charlie_values
    assert len(alice_values) > EVENTS  # device names, push tokens, billing details, descriptions, times

    system.erase(alice_ref)
    dump = subprocess.run(
        [pg_dump, "--data-only", "--no-owner", f"--dbname={url}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout

    assert ALICE_ID not in dump
    assert sorted(v for v in alice_values if v in dump) == []
    tag = streaming_demo._tag(ALICE_ID)
    assert tag not in dump.lower()
    assert f"Demo Listener {streaming_demo._tag(CHARLIE_ID)}" in dump  # the dump does show data
    kept = [r.values for r in system.export(alice_ref)]
    assert len(kept) == 3
    for invoice in kept:
        assert (invoice["billing_name"], invoice["billing_email"], invoice["billing_address"]) == (None, None, None)
        assert f"\t{pseudonym(ALICE_ID)}\t" in dump


def test_the_sqlite_file_holds_none_of_the_subjects_values_after_erasure(tmp_path: Path, alice_ref: SubjectRef) -> None:
    """The embedded default: erasure overwrites freed space (secure_delete), so the SQLite file itself,
    not only a dump of it, holds nothing of Alice's but the kept invoice rows."""
    url = f"sqlite:///{tmp_path / 'streaming.sqlite3'}"
    streaming_demo.seed(url, [ALICE_ID, CHARLIE_ID], events_per_user=EVENTS, seed=5)
    system = streaming_demo.system(url)
    tag = streaming_demo._tag(ALICE_ID)
    assert tag.encode() in (tmp_path / "streaming.sqlite3").read_bytes()

    system.erase(alice_ref)

    raw = (tmp_path / "streaming.sqlite3").read_bytes()
    assert ALICE_ID.encode() not in raw
    assert tag.encode() not in raw and tag.upper().encode() not in raw
    assert streaming_demo._tag(CHARLIE_ID).encode() in raw


# --- Seeding and the commands -------------------------------------------------------------------------


def test_seeding_is_deterministic_and_never_duplicates(streaming_url: str) -> None:
    first = streaming_demo.seed(streaming_url, [ALICE_ID], events_per_user=10, seed=9)
    again = streaming_demo.seed(streaming_url, [ALICE_ID, CHARLIE_ID], events_per_user=10, seed=9)

    assert (first.seeded, first.skipped, first.events) == ([ALICE_ID], [], 10)
    assert (again.seeded, again.skipped, again.events) == ([CHARLIE_ID], [ALICE_ID], 10)
    assert streaming_demo.count_rows(streaming_url) == {
        "listening_events": 20,
        "playlists": 6,
        "followed_artists": 8,
        "devices": 4,
        "invoices": 6,
        "listener_settings": 2,
    }
    assert list(streaming_demo.generate_events(ALICE_ID, 3, seed=9)) == list(
        streaming_demo.generate_events(ALICE_ID, 3, seed=9)
    )
    text = json.dumps(list(all_rows(streaming_url, "invoices").values()))
    assert "@billing.invalid" in text and "Testville" in text


@pytest.fixture
def streaming_settings(settings, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    settings.STREAMING_DATABASE_URL = f"sqlite:///{tmp_path / 'streaming.sqlite3'}"
    return str(settings.STREAMING_DATABASE_URL)


@pytest.mark.django_db
def test_seed_streaming_seeds_the_listeners_once(streaming_settings: str, alice, bob, charlie) -> None:  # type: ignore[no-untyped-def]
    """manage.py seed_streaming --users-from-accounts: listeners only (not staff), never duplicated."""
    out = StringIO()
    call_command("seed_streaming", "--users-from-accounts", "--events", "25", "--no-progress", stdout=out)
    call_command("seed_streaming", "--users-from-accounts", "--events", "25", "--no-progress", stdout=out)

    assert streaming_demo.count_rows(streaming_settings)["listening_events"] == 50
    assert streaming_demo.users_with_data(streaming_settings, [str(alice.pk), str(bob.pk), str(charlie.pk)]) == {
        str(alice.pk),
        str(charlie.pk),
    }
    assert "seeded 2 listeners (50 listening events) in sqlite:///" in out.getvalue()
    assert "seeded 0 listeners (0 listening events)" in out.getvalue()
    assert "skipped 2 listeners who already have streaming data" in out.getvalue()


@pytest.mark.django_db
def test_seed_streaming_reset_needs_confirmation(streaming_settings: str) -> None:
    streaming_demo.seed(streaming_settings, [ALICE_ID], events_per_user=5)

    with pytest.raises(CommandError, match="--reset deletes every row in sqlite:///.*; add --yes to confirm"):
        call_command("seed_streaming", "--reset", "--user", CHARLIE_ID, stdout=StringIO())
    assert streaming_demo.count_rows(streaming_settings)["listening_events"] == 5

    out = StringIO()
    call_command("seed_streaming", "--reset", "--yes", "--dry-run", "--user", CHARLIE_ID, stdout=out)
    assert "dry run: would empty the demo tables" in out.getvalue()
    assert streaming_demo.count_rows(streaming_settings)["listening_events"] == 5

    call_command(
        "seed_streaming", "--reset", "--yes", "--user", CHARLIE_ID, "--events", "7", "--no-progress", stdout=StringIO()
    )
    assert streaming_demo.count_rows(streaming_settings)["listening_events"] == 7
    assert streaming_demo.users_with_data(streaming_settings, [ALICE_ID, CHARLIE_ID]) == {CHARLIE_ID}


@pytest.mark.django_db
def test_seed_streaming_refuses_with_debug_off_and_without_listeners(streaming_settings: str, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="name the listeners"):
        call_command("seed_streaming", stdout=StringIO())
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        call_command("seed_streaming", "--user", ALICE_ID, stdout=StringIO())
    assert not Path(sql.sqlite_path(streaming_settings)).exists()


@pytest.mark.django_db
def test_seed_demo_gives_the_demo_listener_a_streaming_history(streaming_settings: str) -> None:
    """seed_demo ends with the demo listener's history in the connected streaming database, once."""
    from accounts.models import User

    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)

    listener = User.objects.with_email("listener@demo.invalid").get()
    assert out.getvalue().count("Streaming history for the demo listener: 500 listening events") == 1
    assert streaming_demo.count_rows(streaming_settings) == {
        "listening_events": streaming_demo.DEMO_EVENTS,
        "playlists": 3,
        "followed_artists": 4,
        "devices": 2,
        "invoices": 3,
        "listener_settings": 1,
    }
    assert streaming_demo.users_with_data(streaming_settings, [str(listener.pk)]) == {str(listener.pk)}


@pytest.mark.django_db(transaction=True)
def test_seed_demo_s_requests_reach_the_streaming_database_at_once(streaming_settings: str, caplog) -> None:  # type: ignore[no-untyped-def]
    """make run: the connected database's tables exist before the demo requests commit, so the
    choices they carry propagate at once (no failed propagation, no traceback on the console), and
    the propagated settings row stays when the history is seeded after it."""
    with caplog.at_level(logging.WARNING):
        call_command("seed_demo", stdout=StringIO())
    failures = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("compliance")
    ]
    assert failures == []
    assert streaming_demo.count_rows(streaming_settings)["listening_events"] == streaming_demo.DEMO_EVENTS
    assert streaming_demo.count_rows(streaming_settings)["listener_settings"] == 1


@pytest.mark.django_db
def test_seed_demo_is_quiet_when_no_streaming_database_is_connected(streaming_settings: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CONNECTED_DATASETS = []
    out = StringIO()

    call_command("seed_demo", stdout=out)

    assert "Streaming" not in out.getvalue()
    assert not Path(sql.sqlite_path(streaming_settings)).exists()
