"""What every data system offers to the request workflow (issue #4, "Fulfilment across data systems").

A system exports what it holds about a subject (as records, streamed: never all in memory), erases
it as its declaration says (delete the row, null, pseudonymise, or keep under a named legal
exception), and reads back afterwards so that the evidence shows nothing personal remains.
Implementations: internal Django models (registered providers), external SQL databases described
declaratively by a dataset file (``compliance.systems.sql``), external services by signed webhook.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SubjectRef:
    """Who the request is about, as every system can match it: the account id, the blind index of
    the e-mail (systems keyed by e-mail), and the subject's data key (to decrypt their values)."""

    user_id: str
    email_index: str
    data_key_id: uuid.UUID
    email: str | None = None  # plaintext, only while the account still exists; never stored by a system


@dataclass(frozen=True)
class Record:
    """One exported item: which category of personal data, where it came from, the values."""

    category: str
    source: str  # "system.table" or "app.Model"
    values: dict[str, Any]


@dataclass(frozen=True)
class RecordBatch:
    """Many records of one source at once, for a system's fast export path (``export_batches``):
    every row has the same (at least one) columns, and ``values`` holds the rows one after another,
    ``len(columns)`` values each, with no tuple or dict per row. Row ``i`` is the record
    ``Record(category, source, dict(zip(columns, values[i * width : (i + 1) * width])))``; the
    export files are the same either way."""

    category: str
    source: str
    columns: tuple[str, ...]
    values: list[Any]

    @property
    def count(self) -> int:
        return len(self.values) // len(self.columns)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        width = len(self.columns)
        return zip(*(self.values[i::width] for i in range(width)), strict=True)

    def records(self) -> Iterator[Record]:
        for row in self.rows():
            yield Record(self.category, self.source, dict(zip(self.columns, row, strict=True)))


@dataclass(frozen=True)
class Kept:
    """Something erasure left in place under a legal exception, listed in the answer to the subject."""

    source: str
    count: int
    exception: str  # e.g. "GDPR Art. 17(3)(b): tax records, 10 years"
    minimised_to: tuple[str, ...] = ()


@dataclass
class ErasureResult:
    counts: dict[str, int] = field(default_factory=dict)  # source -> rows deleted/nulled/pseudonymised
    kept: list[Kept] = field(default_factory=list)


@dataclass(frozen=True)
class Description:
    """GDPR Art. 15(1) information about a system, for the export's index (purposes, recipients, ...)."""

    name: str
    purposes: tuple[str, ...]
    lawful_bases: tuple[str, ...]
    categories: tuple[str, ...]
    recipients: tuple[str, ...]
    retention: str
    sources: tuple[str, ...]
    # What the system holds about the subject but never discloses, each as "what: how it is held"
    # (CCPA, CCR §7024(d): say that it was collected, never give it; REGULATIONS.md C-11).
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectState:
    """What a rectification, restriction, objection or opt-out carries to a system: the subject's
    current state, not a delta, so applying it twice or out of order ends in the same place.

    ``purposes``: the current choice per processing purpose (compliance.consents.PURPOSES);
    ``restricted``: GDPR Art. 18 restriction in force (store only); ``profile``: the corrected
    account values, sent only for a rectification (data minimisation)."""

    purposes: dict[str, bool]
    restricted: bool
    profile: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"purposes": dict(self.purposes), "restricted": self.restricted}
        if self.profile is not None:
            data["profile"] = dict(self.profile)
        return data


class DataSystem(Protocol):
    name: str

    def describe(self) -> Description: ...

    def export(self, subject: SubjectRef) -> Iterator[Record]: ...

    def erase(self, subject: SubjectRef) -> ErasureResult: ...

    def read_back(self, subject: SubjectRef) -> dict[str, int]:
        """Rows that still hold the subject's personal data, per source (empty or zeros after erasure,
        except what ``erase`` reported as kept)."""
        ...


class BatchExport(Protocol):
    """Optional, for systems with many records: the same records as ``export``, a batch at a time
    (no ``Record`` and no dict per row). ``compliance.exports.records_of`` uses it when present."""

    def export_batches(self, subject: SubjectRef) -> Iterator[RecordBatch]: ...


class PropagatingSystem(DataSystem, Protocol):
    """A system that also keeps choices or copies of account values, and is told when they change
    (GDPR Arts. 16, 18, 19, 21; CCPA opt-outs, C-20). Returns the rows changed, per source."""

    def apply(self, subject: SubjectRef, state: SubjectState) -> dict[str, int]: ...
