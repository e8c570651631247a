"""The export validates against the schema it carries: JSON Schemas for its JSON files, a written layout for its CSV.

Requirement: REGULATIONS.md G-20 (portability: "a structured, commonly used and machine-readable
format"; test: "The export validates against a published JSON/CSV schema. It includes playlists,
listening history and profile data") and G-15 (test: "A schema test on the access-export bundle
requires all 8 information fields plus a transfer-safeguards field, plus the raw data export"). The
schemas and the CSV's description are ``compliance/export_schema/``; every ZIP carries them under
``schema/``, and these tests validate each export with the copy inside it.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from compliance import exports, fulfilment
from compliance.dsr import services
from compliance.models import ExportFile
from compliance.systems import streaming_demo
from compliance.systems.base import Description, Record, RecordBatch
from identity.crypto import keystore
from tests.accounts.api_helpers import login

pytestmark = pytest.mark.django_db

SCHEMA_FOLDER = Path(exports.__file__).parent / "export_schema"
SCHEMA_FILES = ("about-this-export.schema.json", "category.schema.json", "README.md")
ID_BASE = "https://identity-compliance.invalid/export/"

# One record holds everything that is hard to carry: a comma, a quote, a newline, None, a nested
# object, a float and a bool (and non-ASCII text).
AWKWARD = {
    "name": 'Road trip, "summer" mix\nside B',
    "description": None,
    "settings": {"shuffle": True, "crossfade_s": 4.5, "tags": ["indie", "føll, k"], "cover": None},
    "rating": 0.1,
    "public": False,
    "tracks": 12,
}
PLAIN = {"name": "Plain", "description": "", "settings": {}, "rating": 2.0, "public": True, "tracks": 0}
EVENT_COLUMNS = ("track_title", "played_at", "ms_played", "skipped", "ratio")
EVENTS = [
    *('Say "hi", then\r\nleave', "2025-03-14T12:34:56+00:00", 183_000, False, 1e-07),
    *("Ünïcødé ☃", None, 0, True, 0.5),
    *("", "2025-03-15T08:00:00+00:00", 2**40, None, 3.0),
]
USER = {"email": "alice@example.test", "phone": "+49 30 1234567", "display_name": "Alice Listener"}
INVOICE = {"issued_at": "2025-01-31", "amount_cents": 999, "lines": [{"item": "Premium", "euros": 9.99}, []]}
DESCRIPTIONS = [
    Description(
        name="identity",
        purposes=("run your account",),
        lawful_bases=("Art. 6(1)(b) performance of a contract",),
        categories=("contact details (e-mail, phone)",),
        recipients=("our hosting provider (a processor under GDPR Art. 28)",),
        retention="while the account exists",
        sources=("you",),
    ),
    Description(
        name="streaming_history",
        purposes=("play music", "bill the subscription"),
        lawful_bases=("contract", "legal_obligation"),
        categories=("account", "usage"),
        recipients=("payment processor",),
        retention="2 years; invoices 10 years",
        sources=("your listening",),
    ),
]


# What consents.sold_or_shared gives (C-09): one sharing, allowed twice.
SOLD_OR_SHARED = [
    {
        "purpose": "personalised_ads",
        "label": "Ads based on your listening (sharing)",
        "disclosure": "sharing",
        "categories": ["usage"],
        "third_parties": ["advertising partners"],
        "periods": [
            {"from": "2026-01-05T00:00:00+00:00", "until": "2026-02-01T10:00:00+00:00"},
            {"from": "2026-03-01T00:00:00+00:00", "until": None},
        ],
    }
]


@pytest.fixture(autouse=True)
def _export_root(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_ROOT = str(tmp_path / "exports")


def awkward_records() -> list[Record | RecordBatch]:
    return [
        Record("usage", "streaming_history.playlists", AWKWARD),
        Record("usage", "streaming_history.playlists", PLAIN),
        RecordBatch("usage", "streaming_history.listening_events", EVENT_COLUMNS, list(EVENTS)),
        Record("contact", "accounts.User", USER),
        Record("account", "streaming_history.invoices", INVOICE),
    ]


@pytest.fixture
def awkward_export() -> zipfile.ZipFile:
    """An export of three categories (two sources with different fields in one), written and
    assembled by the code every export task runs."""
    request_id, key_id = uuid.uuid4(), keystore.create_key()
    counts = exports.write_parts(request_id, "streaming_history", key_id, iter(awkward_records()))
    path, _ = exports.assemble(request_id, key_id, DESCRIPTIONS, expected=counts, sold_or_shared=SOLD_OR_SHARED)
    data = b"".join(exports.read_encrypted(path, context=f"compliance.export.{request_id}"))
    return zipfile.ZipFile(io.BytesIO(data))


def validator(archive: zipfile.ZipFile, name: str) -> Draft202012Validator:
    """A validator for one of the schemas the ZIP itself carries (itself checked against draft 2020-12)."""
    schema = json.loads(archive.read(f"schema/{name}"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(archive: zipfile.ZipFile, name: str, document: Any) -> list[str]:
    """The keywords ``document`` fails in schema ``name``, as ``path: keyword``."""
    found = validator(archive, name).iter_errors(document)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.validator}" for e in found)


def csv_cell(value: Any) -> str:
    """A JSON value as the CSV shows it (compliance/export_schema/README.md)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)  # a string as it is, True/False, whole numbers


def check_csv(text: str, items: list[dict[str, Any]]) -> None:
    """The CSV of a category against the README's layout and the category's JSON items."""
    assert not text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    assert header[0] == "source"
    assert header[1:] == list(dict.fromkeys(field for item in items for field in item["values"]))
    assert len(rows) - 1 == len(items)
    for row, item in zip(rows[1:], items, strict=True):
        assert len(row) == len(header), row
        values = item["values"]
        assert row == [item["source"], *(csv_cell(values[f]) if f in values else "" for f in header[1:])]
    rewritten = io.StringIO(newline="")
    csv.writer(rewritten).writerows(rows)  # excel dialect: CRLF, quotes only where a field needs them
    assert rewritten.getvalue() == text


def check_export(archive: zipfile.ZipFile) -> dict[str, list[dict[str, Any]]]:
    """Validate every file of an export with the schemas inside it; returns each category's items."""
    names = set(archive.namelist())
    categories = sorted(n[: -len(".json")] for n in names if n.endswith(".json") and "/" not in n)
    categories.remove("about-this-export")
    assert names == {
        *(f"{c}.json" for c in categories),
        *(f"{c}.csv" for c in categories),
        "about-this-export.json",
        "index.html",
        *(f"schema/{n}" for n in SCHEMA_FILES),
    }
    found = {}
    for category in categories:
        items = json.loads(archive.read(f"{category}.json"))
        assert errors(archive, "category.schema.json", items) == [], category
        check_csv(archive.read(f"{category}.csv").decode("utf-8"), items)
        found[category] = items
    info = json.loads(archive.read("about-this-export.json"))
    assert errors(archive, "about-this-export.schema.json", info) == []
    assert info["record_counts"] == {c: len(items) for c, items in found.items()}
    return found


def test_every_file_of_an_export_validates_against_the_schemas_it_carries(awkward_export: zipfile.ZipFile) -> None:
    found = check_export(awkward_export)
    assert errors(awkward_export, "category.schema.json", {"usage": found["usage"]}) == [": type"]  # not an array

    events = [dict(zip(EVENT_COLUMNS, EVENTS[i : i + 5], strict=True)) for i in range(0, len(EVENTS), 5)]
    assert found == {
        "account": [{"source": "streaming_history.invoices", "values": INVOICE}],
        "contact": [{"source": "accounts.User", "values": USER}],
        "usage": [
            {"source": "streaming_history.playlists", "values": AWKWARD},
            {"source": "streaming_history.playlists", "values": PLAIN},
            *({"source": "streaming_history.listening_events", "values": e} for e in events),
        ],
    }
    usage = awkward_export.read("usage.csv").decode("utf-8").split("\r\n")
    assert usage[:3] == [
        "source,name,description,settings,rating,public,tracks,track_title,played_at,ms_played,skipped,ratio",
        'streaming_history.playlists,"Road trip, ""summer"" mix\nside B",,"{""shuffle"": true, ""crossfade_s"": 4.5,'
        ' ""tags"": [""indie"", ""føll, k""], ""cover"": null}",0.1,False,12,,,,,',
        "streaming_history.playlists,Plain,,{},2.0,True,0,,,,,",
    ]
    assert usage[3:6] == [
        'streaming_history.listening_events,,,,,,,"Say ""hi"", then',  # the CRLF inside the quoted field
        'leave",2025-03-14T12:34:56+00:00,183000,False,1e-07',
        "streaming_history.listening_events,,,,,,,Ünïcødé ☃,,0,True,0.5",
    ]


def test_the_zip_carries_the_published_schemas_as_they_are_in_the_package(awkward_export: zipfile.ZipFile) -> None:
    for name in SCHEMA_FILES:
        assert awkward_export.read(f"schema/{name}") == (SCHEMA_FOLDER / name).read_bytes(), name
    for name in SCHEMA_FILES[:2]:
        schema = json.loads(awkward_export.read(f"schema/{name}"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == ID_BASE + name and schema["title"] and schema["description"]
    readme = awkward_export.read("schema/README.md").decode("utf-8")
    assert "category.schema.json" in readme and "about-this-export.schema.json" in readme


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    def tamper(document: dict[str, Any]) -> None:
        del document[key]

    return tamper


TAMPERED_ABOUT = [
    pytest.param(
        lambda d: d.update(marketing_profile={"segment": "heavy listener"}), [": additionalProperties"], id="extra-key"
    ),
    pytest.param(_without("international_transfers"), [": required"], id="no-transfer-safeguards"),  # Art. 15(2)
    pytest.param(_without("automated_decision_making"), [": required"], id="no-automated-decisions"),  # 15(1)(h)
    pytest.param(_without("record_counts"), [": required"], id="no-record-counts"),
    pytest.param(lambda d: d.update(purposes=[]), ["purposes: minItems"], id="no-purposes"),
    pytest.param(lambda d: d.update(complaint=""), ["complaint: minLength"], id="empty-complaint"),
    pytest.param(lambda d: d["record_counts"].update(usage=-1), ["record_counts/usage: minimum"], id="negative-count"),
    pytest.param(lambda d: d["record_counts"].update(usage=1.5), ["record_counts/usage: type"], id="fractional-count"),
    pytest.param(
        lambda d: d["systems"][0].update(owner="x"), ["systems/0: additionalProperties"], id="extra-system-key"
    ),
    pytest.param(
        lambda d: d["category_labels"].update({"Not A Code": "x"}), ["category_labels: pattern"], id="bad-code"
    ),
    pytest.param(_without("sold_or_shared"), [": required"], id="no-sold-or-shared-c09"),
    pytest.param(_without("disclosed_for_business_purpose"), [": required"], id="no-business-disclosures-c09"),
    pytest.param(
        lambda d: d["sold_or_shared"][0].update(disclosure="gift"), ["sold_or_shared/0/disclosure: enum"], id="not-sale"
    ),
    pytest.param(
        lambda d: d["sold_or_shared"][0].update(third_parties=[]),
        ["sold_or_shared/0/third_parties: minItems"],
        id="sharing-with-nobody-named",
    ),
    pytest.param(
        lambda d: d["sold_or_shared"][0].update(periods=[]), ["sold_or_shared/0/periods: minItems"], id="no-period"
    ),
]
TAMPERED_CATEGORY = [
    pytest.param(lambda d: d[0].pop("source"), ["0: required"], id="no-source"),
    pytest.param(lambda d: d[0].pop("values"), ["0: required"], id="no-values"),
    pytest.param(lambda d: d[1].update(owner="charlie@example.test"), ["1: additionalProperties"], id="extra-key"),
    pytest.param(lambda d: d[0].update(values=[1, 2]), ["0/values: type"], id="values-not-an-object"),
    pytest.param(lambda d: d[0].update(source="playlists"), ["0/source: pattern"], id="source-without-system"),
    pytest.param(lambda d: d.append("a loose value"), ["5: type"], id="item-not-an-object"),
]


@pytest.mark.parametrize(("tamper", "expected"), TAMPERED_ABOUT)
def test_the_about_schema_rejects_a_tampered_document(
    awkward_export: zipfile.ZipFile, tamper: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    info = json.loads(awkward_export.read("about-this-export.json"))
    assert errors(awkward_export, "about-this-export.schema.json", info) == []
    tamper(info)
    assert errors(awkward_export, "about-this-export.schema.json", info) == expected


@pytest.mark.parametrize(("tamper", "expected"), TAMPERED_CATEGORY)
def test_the_category_schema_rejects_a_tampered_document(
    awkward_export: zipfile.ZipFile, tamper: Callable[[list[Any]], None], expected: list[str]
) -> None:
    items = json.loads(awkward_export.read("usage.json"))
    assert errors(awkward_export, "category.schema.json", items) == []
    tamper(items)
    assert errors(awkward_export, "category.schema.json", items) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda text: text.replace(",False,12,", ",false,12,"), id="bool-as-json"),
        pytest.param(lambda text: text.replace(",0.1,", ",0.10,"), id="float-not-repr"),
        pytest.param(lambda text: text.replace("\r\n", "\n"), id="lf-line-ends"),
        pytest.param(lambda text: text.replace("Plain,,{},", "Plain,{},"), id="missing-field"),
        pytest.param(lambda text: text.replace("Plain", '"Plain"'), id="needless-quotes"),
        pytest.param(lambda text: text.rsplit("streaming_history.listening_events", 1)[0], id="missing-row"),
    ],
)
def test_the_csv_check_fails_on_a_file_that_breaks_the_layout(
    awkward_export: zipfile.ZipFile, tamper: Callable[[str], str]
) -> None:
    items = json.loads(awkward_export.read("usage.json"))
    text = awkward_export.read("usage.csv").decode("utf-8")
    check_csv(text, items)
    with pytest.raises(AssertionError):
        check_csv(tamper(text), items)


def test_a_listeners_whole_export_validates_with_the_streaming_history(
    alice, settings, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """Through the fulfilment flow: this service's records and the connected streaming history
    (playlists, listening history, devices, invoices, settings), every file valid (G-20), the Art. 15
    information complete (G-15)."""
    settings.STREAMING_DATABASE_URL = f"sqlite:///{tmp_path / 'streaming.sqlite3'}"
    settings.CONNECTED_DATASETS = [str(streaming_demo.DATASET_PATH)]
    streaming_demo.seed(settings.STREAMING_DATABASE_URL, [str(alice.pk)], events_per_user=40, seed=5)
    login(APIClient(), "alice@example.test")  # a session and sign-in events
    request = services.submit_request(
        subject=alice, kind="portability", channel="api", actor=alice, verification="session+mfa"
    ).request
    with django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor=alice)
    request.refresh_from_db()
    assert request.status == "completed", request.evidence
    export = ExportFile.objects.get(request=request)
    data = b"".join(exports.read_encrypted(Path(export.path), context=f"compliance.export.{request.pk}"))

    found = check_export(zipfile.ZipFile(io.BytesIO(data)))

    assert {"contact", "identity", "usage", "account", "security", "consent"} <= set(found)
    usage_sources = {item["source"].rsplit(".", 1)[1] for item in found["usage"]}
    assert {"listening_events", "playlists"} <= usage_sources  # G-20: listening history and playlists
    assert sum(item["source"].endswith(".listening_events") for item in found["usage"]) == 40
    assert {"source": "accounts.User", "values": found["contact"][0]["values"]} == found["contact"][0]
    assert found["contact"][0]["values"]["email"] == "alice@example.test"  # profile data


def test_the_package_folder_holds_exactly_the_files_every_zip_carries() -> None:
    assert sorted(p.name for p in SCHEMA_FOLDER.iterdir()) == sorted(SCHEMA_FILES)
    for name in SCHEMA_FILES[:2]:
        Draft202012Validator.check_schema(json.loads((SCHEMA_FOLDER / name).read_text()))
