"""Property-based round trips for every encrypted field type (issue #2: unicode, empty, long, edge values).

Requirement: DESIGN.md "Encryption at rest: AES-256"; a value must come back exactly as saved.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.testapp.models import Vault

pytestmark = pytest.mark.django_db

# One subject for all examples: the keystore creates its key once, then the cache serves it.
SUBJECT = uuid.uuid4()

# PostgreSQL text cannot hold NUL; the encrypted column is binary, so even NUL must survive.
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=5000)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)
emails = st.emails()
dates = st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31))

COMMON = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def roundtrip(**values: object) -> Vault:
    vault = Vault.objects.create(data_key_id=SUBJECT, **values)
    return Vault.objects.get(pk=vault.pk)


@COMMON
@given(value=texts)
def test_text_round_trips(value: str) -> None:
    assert roundtrip(text=value).text == value


@COMMON
@given(value=emails)
def test_email_round_trips(value: str) -> None:
    assert roundtrip(email=value).email == value


@COMMON
@given(value=dates)
def test_date_round_trips(value: datetime.date) -> None:
    assert roundtrip(day=value).day == value


@COMMON
@given(value=json_values)
def test_json_round_trips(value: object) -> None:
    assert roundtrip(doc=value).doc == value


@pytest.mark.parametrize(
    "value",
    ["", " ", "\x00", "a" * 100_000, "🎵" * 1000, "\u202e right-to-left", "line\nbreak\r\n", "é vs é"],
    ids=["empty", "space", "nul", "long", "emoji", "bidi", "newlines", "nfc-nfd"],
)
def test_text_edge_values(value: str) -> None:
    assert roundtrip(text=value).text == value
