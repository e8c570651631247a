"""Export files: streamed, encrypted at rest in chunks under the subject's key, and the ZIP a subject gets.

The ZIP holds, per category of personal data, one JSON file and one CSV file, the information GDPR
Art. 15 requires beside the data (``about-this-export.json``) and a readable summary (``index.html``).
The CSV has one row per record, as a spreadsheet expects: a ``source`` column, then every field any
source of the category has, in the order first met (a field a source lacks is left empty). Parts and
the ZIP are written through ``EncryptedWriter``: AES-256-GCM chunks of 64 KiB under the subject's key,
so a copy on disk or in a backup is unreadable once the subject's key is destroyed. Memory stays
flat: records are streamed from the systems to the parts, and from the parts into the ZIP.

The text of the files is made when the parts are written (``_Part``), a batch of up to
``EXPORT_BATCH`` records at a time, while the database sends the next rows: a part is three files,
``.json.enc`` (the category's JSON objects), ``.csv.enc`` (its CSV rows, batch by batch, each batch
after a line naming its source, columns, count and length) and ``.index.enc`` (the count, and each
source with its columns, for the CSV's header). The ZIP is then little more
than a copy, compressed with zlib-ng (the same DEFLATE format as zlib, two to three times faster).
From a COPY (``SqlDataSystem.export_copy``) a batch is COPY's text as the server sent it, unparsed
until then: a tab, then every value followed by a tab (``_CopyBatch`` reads it). Each column's text
is made with a few calls over the whole column (``_json_text``, ``_csv_rows``), with exactly the
text writing one record at a time gives.

Parts written by earlier versions (``.jsonl.enc``: a header line per source and its columns, then the
values of up to ``EXPORT_BATCH`` records on a line, or COPY's text, or one ``{"source": ...,
"values": {...}}`` line per record) are still assembled, their text made then.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import struct
import uuid
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from zlib_ng import zlib_ng

from compliance.registry import Category, LawfulBasis
from compliance.systems.base import DataSystem, Description, Record, RecordBatch, SubjectRef
from compliance.systems.sql import COPY_KINDS, CopyBatch
from identity.crypto import envelope

CHUNK = 64 * 1024
_LEN = struct.Struct(">I")
EXPORT_BATCH = 10_000  # records per line of a part (Record streams are gathered up to this)
ZIP_LEVEL = 1  # zlib-ng level of the ZIP's members: docs/benchmarks.md, "Data-subject requests"
MEMBER_WRITE = 1024 * 1024  # bytes handed to the compressing thread at a time
DEFLATE_BLOCK = 1024 * 1024  # bytes deflated as one block (_ParallelDeflate)
DEFLATE_THREADS = 2


class EncryptedWriter(io.RawIOBase):
    """A write-only, unseekable file whose bytes land on disk as framed AES-256-GCM chunks."""

    def __init__(self, path: Path, *, key_id: uuid.UUID, context: str) -> None:
        super().__init__()
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._key_id = key_id
        self._context = context
        self._buffer = bytearray()
        self._index = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self._buffer or size < CHUNK:
            room = CHUNK - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == CHUNK:
                self._seal(bytes(self._buffer))
                self._buffer.clear()
        while len(view) >= CHUNK:  # large writes are sealed straight from the caller's bytes
            self._seal(bytes(view[:CHUNK]))
            view = view[CHUNK:]
        self._buffer += view
        self.size += size
        return size

    def _seal(self, chunk: bytes) -> None:
        token = envelope.encrypt(chunk, key_id=self._key_id, context=f"{self._context}.{self._index}")
        self._file.write(_LEN.pack(len(token)) + token)
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            if self._buffer:
                self._seal(bytes(self._buffer))
                self._buffer.clear()
            self._file.close()
        super().close()


def read_encrypted(path: Path, *, context: str) -> Iterator[bytes]:
    """The plaintext chunks of a file written by EncryptedWriter. A destroyed key raises LookupError."""
    with open(path, "rb") as handle:
        index = 0
        while header := handle.read(_LEN.size):
            (length,) = _LEN.unpack(header)
            plaintext = envelope.decrypt(handle.read(length), context=f"{context}.{index}")
            if isinstance(plaintext, envelope.Erased):
                raise LookupError("this export belongs to an erased subject: its key was destroyed")
            yield plaintext
            index += 1


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of chunks; a long line (a batch of records) is joined once."""
    pending: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        first, *complete, rest = chunk.split(b"\n")
        pending.append(first)
        yield b"".join(pending)
        yield from complete
        pending = [rest] if rest else []
    if pending:
        yield b"".join(pending)


def export_root() -> Path:
    root = Path(settings.EXPORT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def part_path(request_id: uuid.UUID, system: str, category: str, suffix: str = ".json.enc") -> Path:
    """A part's file: ``.json.enc`` (the records' JSON) and ``.csv.enc`` (their CSV rows) as this
    version writes them; ``.jsonl.enc``, one file of values, as earlier versions did."""
    folder = export_root() / str(request_id) / "parts"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{system}__{category}")
    return folder / f"{safe}{suffix}"


def part_context(request_id: uuid.UUID, system: str, category: str) -> str:
    return f"compliance.export-part.{request_id}.{system}.{category}"


def records_of(system: DataSystem, subject: SubjectRef) -> Iterable[Record | RecordBatch | CopyBatch]:
    """What an export task writes for a system: COPY's text when it offers it
    (``SqlDataSystem.export_copy``), else its batches when it offers them
    (``compliance.systems.base.BatchExport``), else its records."""
    copied = getattr(system, "export_copy", None)
    if copied is not None:
        return cast(Iterable[CopyBatch | RecordBatch], copied(subject))
    batches = getattr(system, "export_batches", None)
    return batches(subject) if batches is not None else system.export(subject)


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode
# Joins the str values of a column in a part: JSON leaves it as it is (a NUL would become "\u0000"),
# and a column with it inside a value is written as an array instead.
_SEP = "\uffff"


def _column_json(column: list[Any]) -> str:
    """One column of a part line: str values joined by _SEP as one JSON string (one escaping pass),
    whole numbers as an array written here, anything else as the encoder writes it."""
    kinds = set(map(type, column))
    if kinds == {str}:
        joined = _SEP.join(column)
        if joined.count(_SEP) == len(column) - 1:
            return _ENCODE(joined)
    elif kinds == {int}:
        return "[" + ",".join(map(str, column)) + "]"
    return _ENCODE(column)


class _Part:
    """A category's part being written, already in the form of the ZIP's files: the records' JSON
    (``.json.enc``: the objects of the JSON file, separated by ",\n") and their CSV rows
    (``.csv.enc``: per batch a line ``{"source", "columns", "count", "bytes"}``, then that many bytes
    of rows with the source's own columns), and an index (``.index.enc``: the count, and each source
    with its columns, which the CSV's header needs before its first row). The text is made here,
    while the database is still sending the next rows, so that the ZIP is little more than a copy.

    Records that come one at a time are gathered into batches of up to EXPORT_BATCH, each made from
    the line of JSON values earlier versions stored (so that every value is shown exactly as it was)."""

    def __init__(self, files: dict[str, EncryptedWriter], finals: dict[str, Path]) -> None:
        self.json_file = files["json"]
        self.csv_file = files["csv"]
        self.index_file = files["index"]
        self.finals = finals  # in the order they are renamed into place: the JSON file last
        self.sections: dict[tuple[str, tuple[str, ...]], None] = {}
        self.head: tuple[str, tuple[str, ...]] | None = None  # source and columns of the gathered values
        self.values: list[Any] = []
        self.pending = 0
        self.count = 0
        self.separator = ""

    def add(self, source: str, columns: tuple[str, ...], values: list[Any], count: int) -> None:
        if self.head != (source, columns):
            self.flush()
            self.head = (source, columns)
        self.count += count
        if not self.pending and count >= EXPORT_BATCH:
            self._records(source, columns, values, count)  # a whole batch, as it came
            return
        self.values.extend(values)
        self.pending += count
        if self.pending >= EXPORT_BATCH:
            self.flush()

    def add_copy(self, batch: CopyBatch) -> None:
        """COPY's text: a tab, then every value followed by a tab (``CopyBatch.text``)."""
        self.flush()
        self.count += batch.count
        self._render(_CopyBatch(batch.source, batch.columns, batch.kinds, b"\t" + batch.text))

    def flush(self) -> None:
        if self.pending and self.head is not None:
            self._records(*self.head, self.values, self.pending)
            self.values, self.pending = [], 0

    def _records(self, source: str, columns: tuple[str, ...], values: list[Any], count: int) -> None:
        width = len(columns)
        if not width:
            self._render(_Batch(source, columns, count, []))
            return
        line = "[" + ",".join(_column_json(values[i::width]) for i in range(width)) + "]"
        self._render(_Batch(source, columns, count, json.loads(line)))

    def _render(self, batch: _Batch) -> None:
        self.json_file.write(_json_text(batch, self.separator).encode("utf-8"))
        self.separator = ",\n"
        rows = _csv_rows(batch, list(batch.columns)).encode("utf-8")
        head = {"source": batch.source, "columns": list(batch.columns), "count": batch.count, "bytes": len(rows)}
        self.csv_file.write(_ENCODE(head).encode("utf-8") + b"\n")
        self.csv_file.write(rows)
        self.sections[(batch.source, batch.columns)] = None

    def close(self) -> None:
        """Write the index, close the files (the caller renames them into place)."""
        sections = [{"source": source, "columns": list(columns)} for source, columns in self.sections]
        self.index_file.write(_ENCODE({"count": self.count, "sections": sections}).encode("utf-8"))
        for file in (self.json_file, self.csv_file, self.index_file):
            file.close()


def write_parts(
    request_id: uuid.UUID, system: str, key_id: uuid.UUID, records: Iterable[Record | RecordBatch | CopyBatch]
) -> dict[str, int]:
    """Stream a system's records (or batches of them) into one encrypted part per category; returns counts.

    Parts are written to temporary names and renamed at the end (the JSON file last: it marks a
    whole part), so a crash leaves no half part behind (a failure removes the temporary files): the
    task runs again from the start (idempotent)."""
    parts: dict[str, _Part] = {}
    try:
        for item in records:
            if isinstance(item, CopyBatch | RecordBatch) and not item.count:
                continue
            part = parts.get(item.category)
            if part is None:
                part = parts[item.category] = _new_part(request_id, system, key_id, item.category)
            if isinstance(item, CopyBatch):
                part.add_copy(item)
                continue
            if isinstance(item, RecordBatch):
                part.add(item.source, item.columns, item.values, item.count)
                continue
            values = item.values
            if not all(type(key) is str for key in values):  # keys as JSON writes them
                values = json.loads(_ENCODE(values))
            part.add(item.source, tuple(values), list(values.values()), 1)
        for part in parts.values():
            part.flush()
        for part in parts.values():
            part.close()
    except BaseException:
        for part in parts.values():
            for file in (part.json_file, part.csv_file, part.index_file):
                file.close()
            for final in part.finals.values():
                final.with_suffix(".tmp").unlink(missing_ok=True)
        raise
    for part in parts.values():
        for final in part.finals.values():
            os.replace(final.with_suffix(".tmp"), final)
    return {category: part.count for category, part in parts.items()}


def count_records(records: Iterable[Record | RecordBatch | CopyBatch]) -> dict[str, int]:
    """What ``write_parts`` would report for ``records``, with nothing written: a request for the
    categories only (REGULATIONS.md C-12) gets the number of records per category, so no copy of
    the records themselves is made for it, not even an encrypted one (GDPR Art. 5(1)(c))."""
    counts: dict[str, int] = {}
    for item in records:
        count = item.count if isinstance(item, CopyBatch | RecordBatch) else 1
        if count:
            counts[item.category] = counts.get(item.category, 0) + count
    return counts


def _new_part(request_id: uuid.UUID, system: str, key_id: uuid.UUID, category: str) -> _Part:
    context = part_context(request_id, system, category)
    finals = {kind: part_path(request_id, system, category, f".{kind}.enc") for kind in ("csv", "index", "json")}
    files = {
        kind: EncryptedWriter(final.with_suffix(".tmp"), key_id=key_id, context=f"{context}.{kind}")
        for kind, final in finals.items()
    }
    return _Part(files, finals)


class _Source:
    """A system's part of a category, as assemble reads it: rendered (this version) or values (earlier)."""

    def __init__(self, request_id: uuid.UUID, system: str, category: str, path: Path) -> None:
        self.context = part_context(request_id, system, category)
        self.rendered = path.name.endswith(".json.enc")
        self.path = path
        stem = path.name[: -len(".json.enc")]
        self.csv_path = path.with_name(stem + ".csv.enc") if self.rendered else path
        self.index_path = path.with_name(stem + ".index.enc") if self.rendered else path

    def index(self) -> dict[str, Any]:
        """A rendered part's count and sources with their columns."""
        text = b"".join(read_encrypted(self.index_path, context=f"{self.context}.index"))
        index: dict[str, Any] = json.loads(text)
        return index

    def files(self) -> list[Path]:
        return [self.path, self.csv_path, self.index_path] if self.rendered else [self.path]


def _parts_by_category(request_id: uuid.UUID) -> dict[str, list[_Source]]:
    folder = export_root() / str(request_id) / "parts"
    found: dict[str, list[_Source]] = {}
    paths = [*folder.glob("*.json.enc"), *folder.glob("*.jsonl.enc")] if folder.exists() else []
    for path in sorted(paths):
        stem = path.name[: -len(".json.enc")] if path.name.endswith(".json.enc") else path.name[: -len(".jsonl.enc")]
        system, _, category = stem.partition("__")
        found.setdefault(category, []).append(_Source(request_id, system, category, path))
    return found


class _Batch:
    """Records of a part, column by column; ``joined`` keeps a column's values still joined by _SEP
    (str columns), so that the JSON and CSV texts of the whole column are checked in one pass."""

    def __init__(self, source: str, columns: tuple[str, ...], count: int, data: list[Any]) -> None:
        self.source, self.columns, self.count = source, columns, count
        self.joined: list[str | None] = [c if isinstance(c, str) else None for c in data]
        self.values: list[list[Any]] = [c.split(_SEP) if isinstance(c, str) else c for c in data]

    def json_column(self, i: int) -> tuple[list[str], bool]:
        """The JSON texts of column ``i``'s values, and whether each is a string still to be put in
        quotes (so that the quotes go into the pieces around it, not into a new string per value)."""
        return _json_texts(self.values[i], self.joined[i])

    def csv_column(self, i: int) -> list[str]:
        """Column ``i``'s values as csv.writer (excel dialect) writes them."""
        return _csv_texts(self.values[i], self.joined[i])


def _json_texts(column: list[Any], joined: str | None) -> tuple[list[str], bool]:
    """:meth:`_Batch.json_column` of a column whose strings, when all are strings, are ``joined``."""
    if joined is not None and not _ESCAPED_IN_JSON.search(joined):
        return column, True
    return _json_values(column), False


def _csv_texts(column: list[Any], joined: str | None) -> list[str]:
    """:meth:`_Batch.csv_column` of a column whose strings, when all are strings, are ``joined``."""
    if joined is not None:
        return [_csv_quoted(v) for v in column] if _QUOTED_IN_CSV.search(joined) else column
    return _csv_values(column)


class _CopyBatch(_Batch):
    """COPY's text in a part (a line: a tab, then every value followed by a tab), split once. Checks
    over the whole batch decide what the columns need: with no backslash there is no NULL and
    nothing escaped; then with no quote or control character every text value is its JSON string's
    inside, and with no quote or comma its CSV field. Whole numbers stay COPY's text, which is their
    JSON and CSV text too."""

    def __init__(self, source: str, columns: tuple[str, ...], kinds: tuple[str, ...], line: bytes) -> None:
        width = len(columns)
        text = line.decode("utf-8")
        self.split = text.split("\t")
        if not width or (len(self.split) - 2) % width or self.split[0] or self.split[-1]:
            raise ValueError("a part's COPY line has rows of an unexpected shape")
        self.source, self.columns, self.kinds = source, columns, kinds
        self.count = (len(self.split) - 2) // width
        self.plain = b"\\" not in line
        # UTF-8 puts no byte below 0x80 inside a character: the checks can look at bytes.
        self.json_plain = self.plain and len(line.translate(None, _ESCAPED_IN_COPY_JSON)) == len(line)
        self.csv_plain = self.plain and b"," not in line and b'"' not in line
        self._loaded: dict[int, list[Any]] = {}

    def _column(self, i: int) -> list[Any]:
        """Column ``i``'s values, loaded once for both files (its JSON and its CSV text)."""
        column = self._loaded.get(i)
        if column is None:
            column = self.split[1 + i : -1 : len(self.columns)]
            kind = self.kinds[i]
            if kind != "int" and (kind != "text" or not self.plain):
                column = COPY_KINDS[kind](column)
            # else text without escapes, or whole numbers as text (NULL as \N)
            self._loaded[i] = column
        return column

    def _joined(self, kind: str, column: list[Any]) -> str | None:
        if kind not in _TEXT_KINDS or None in column:
            return None
        joined = _SEP.join(column)
        return joined if joined.count(_SEP) == len(column) - 1 else None

    def json_column(self, i: int) -> tuple[list[str], bool]:
        kind, column = self.kinds[i], self._column(i)
        if kind == "int":
            return (["null" if v == "\\N" else v for v in column] if "\\N" in column else column), False
        if self.json_plain and kind in _TEXT_KINDS:
            return column, True
        return _json_texts(column, self._joined(kind, column))

    def csv_column(self, i: int) -> list[str]:
        kind, column = self.kinds[i], self._column(i)
        if kind == "int":
            return ["" if v == "\\N" else v for v in column] if "\\N" in column else column
        if self.csv_plain and kind in _TEXT_KINDS:
            return column
        return _csv_texts(column, self._joined(kind, column))


_TEXT_KINDS = frozenset({"text", "timestamp", "timestamptz"})  # COPY kinds whose values are str (or None)


def _part_batches(path: Path, context: str) -> Iterator[_Batch]:
    source: str = ""
    columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    for line in _lines(read_encrypted(path, context=context)):
        if line[:1] == b"\t":  # COPY's text, of the columns of the last header
            yield _CopyBatch(source, columns, kinds, line)
            continue
        item = json.loads(line)
        if isinstance(item, list):
            count = len(item[0]) if isinstance(item[0], list) else item[0].count(_SEP) + 1
            yield _Batch(source, columns, count, item)
        elif isinstance(item, int):
            yield _Batch(source, columns, item, [])
        elif "columns" in item:
            source, columns, kinds = item["source"], tuple(item["columns"]), tuple(item.get("copy", ()))
            if any(kind not in COPY_KINDS for kind in kinds):
                raise ValueError("a part names a kind of COPY column this version does not know")
        else:  # one record, as earlier versions wrote parts
            yield _Batch(item["source"], tuple(item["values"]), 1, [[v] for v in item["values"].values()])


def _part_columns(path: Path, context: str, found: dict[str, None]) -> None:
    """Add to ``found`` every column of a part, in the order first met: the CSV's header must be
    written before its rows. Only header lines are parsed (and the records of earlier versions'
    parts, which name their own fields)."""
    for line in _lines(read_encrypted(path, context=context)):
        if line[:1] != b"{":
            continue  # a batch: COPY's text, values or a count
        item = json.loads(line)
        found.update(dict.fromkeys(item["columns"] if "columns" in item else item["values"]))


# The JSON and CSV files of a category hold exactly the text that writing one record at a time gave
# (``_ENCODE({"source": ..., "values": {...}})`` per record; a ``csv.writer`` row of the source and
# the category's fields per record). They are made a batch at a time: each column's value texts with a few calls over
# the whole column, then every record's pieces placed in one list by slice assignment and joined.
_ESCAPED_IN_JSON = re.compile(r'["\\\x00-\x1f]')
_ESCAPED_IN_COPY_JSON = bytes([*range(0x09), *range(0x0A, 0x20), ord('"')])  # the same bar the tab, as bytes
_QUOTED_IN_CSV = re.compile(r'[",\r\n]')
# Encodes a list with NUL between the values (a NUL inside a string is escaped), to split it.
_PIECES = json.JSONEncoder(ensure_ascii=False, default=str, separators=("\x00", ": "), allow_nan=False).encode
_STRICT = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False).encode
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity, which JSON has no number for, as its name in a string."""
    if type(value) is float:
        return _NON_FINITE.get(repr(value), value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_values(values: list[Any]) -> list[str]:
    """The JSON texts of a column's values: strict JSON, so a NaN or an infinity is written as the
    string "NaN", "Infinity" or "-Infinity" (Python's own encoder would write a bare NaN, which
    strict parsers and the export's schema refuse)."""
    if set(map(type, values)) == {int}:
        return list(map(str, values))
    try:
        pieces = _PIECES(values)[1:-1].split("\x00")
    except ValueError:  # a NaN or an infinity somewhere
        values = _finite(values)
        pieces = _PIECES(values)[1:-1].split("\x00")
    if len(pieces) == len(values):  # else a list or an object of two or more items was split too
        return pieces
    return [_STRICT(v) for v in values]


def _json_text(batch: _Batch, separator: str = "") -> str:
    """The batch's records in the JSON file, separated by ",\n", after ``separator``."""
    count, width = batch.count, len(batch.columns)
    head = '{"source": ' + _ENCODE(batch.source) + ', "values": {'
    if not width:
        return separator + ",\n".join([head + "}}"] * count)
    stride = 2 * width + 1
    pieces: list[str] = [""] * (count * stride)
    close = ""  # the quote that ends the last column's strings
    for i, column in enumerate(batch.columns):
        texts, quoted = batch.json_column(i)
        lead = head if i == 0 else close + ", "
        close = '"' if quoted else ""
        pieces[2 * i :: stride] = [lead + _ENCODE(column) + ": " + close] * count
        pieces[2 * i + 1 :: stride] = texts
    pieces[stride - 1 :: stride] = [close + "}},\n"] * count
    pieces[-1] = close + "}}"
    pieces[0] = separator + pieces[0]
    return "".join(pieces)


def _csv_quoted(text: str) -> str:
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\r" in text or "\n" in text:
        return '"' + text + '"'
    return text


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _csv_quoted(json.dumps(value, ensure_ascii=False))
    if isinstance(value, float):
        return repr(value)
    return _csv_quoted(str(value))


def _csv_values(values: list[Any]) -> list[str]:
    if set(map(type, values)) <= {int, bool, float}:  # str() of these (repr() of a float) needs no quotes
        return list(map(str, values))
    return [_csv_field(v) for v in values]


def _csv_header(columns: list[str]) -> bytes:
    return (",".join(_csv_quoted(c) for c in ["source", *columns]) + "\r\n").encode("utf-8")


def _csv_rows(batch: _Batch, columns: list[str]) -> str:
    """The batch's CSV rows (``source``, then the category's ``columns``; a field this batch's source
    does not have is empty), each ended by CRLF, as ``csv.writer`` writes them."""
    count = batch.count
    if not columns:
        return (_csv_quoted(batch.source) + "\r\n") * count
    where = {name: i for i, name in enumerate(batch.columns)}
    stride = 2 * len(columns) + 2  # source, then a comma and a value per column, then the line's end
    pieces: list[str] = [""] * (count * stride)
    pieces[0::stride] = [_csv_quoted(batch.source)] * count
    for j, name in enumerate(columns):
        pieces[2 * j + 1 :: stride] = [","] * count
        i = where.get(name)
        if i is not None:
            pieces[2 * j + 2 :: stride] = batch.csv_column(i)
    pieces[stride - 1 :: stride] = ["\r\n"] * count
    return "".join(pieces)


def art15_information(
    descriptions: list[Description],
    *,
    specific_pieces: bool = True,
    sold_or_shared: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """GDPR Art. 15(1)(a)-(h) and 15(2) beside the data (REGULATIONS.md G-15); whether the data
    itself is included (``specific_pieces``: not for a CCPA request for categories, C-12); what is
    held but never disclosed (C-11); what was sold or shared about the subject and what each system
    discloses for a business purpose (C-09; ``sold_or_shared`` from ``consents.sold_or_shared``)."""
    return {
        "specific_pieces": specific_pieces,
        "withheld": sorted({w for d in descriptions for w in d.withheld}),
        "purposes": sorted({p for d in descriptions for p in d.purposes}),
        "lawful_bases": sorted({b for d in descriptions for b in d.lawful_bases}),
        "categories": sorted({c for d in descriptions for c in d.categories}),
        "recipients": sorted({r for d in descriptions for r in d.recipients}),
        "retention": {d.name: d.retention for d in descriptions},
        "sources": sorted({s for d in descriptions for s in d.sources}),
        "your_rights": [
            "rectification (GDPR Art. 16)",
            "erasure (Art. 17)",
            "restriction (Art. 18)",
            "objection (Art. 21)",
            "portability (Art. 20)",
            "withdraw consent at any time (Art. 7(3))",
        ],
        "complaint": "You may lodge a complaint with a data protection supervisory authority (GDPR Art. 77).",
        "automated_decision_making": (
            "Sign-ins are scored by a risk engine (signals such as a new device or an impossible journey) that can "
            "ask for a second factor or refuse a sign-in; a person can review any refusal. No other automated "
            "decisions with legal or similarly significant effects are made (GDPR Art. 22)."
        ),
        "international_transfers": "Data is processed in the EU; processors outside it are bound by standard "
        "contractual clauses (GDPR Art. 46).",
        "systems": [{"name": d.name, "categories": list(d.categories)} for d in descriptions],
        # CCPA §1798.115(a)(3) (C-09): the categories each system discloses for a business purpose, and to whom.
        "disclosed_for_business_purpose": [
            {"system": d.name, "categories": list(d.categories), "recipients": list(d.recipients)}
            for d in descriptions
            if d.recipients
        ],
        "sold_or_shared": list(sold_or_shared or []),
        "lawful_basis_labels": {b.value: b.label for b in LawfulBasis},
        "category_labels": {c.value: c.label for c in Category},
    }


class _Handoff(io.RawIOBase):
    """The file the ZIP is written to: it keeps what it is given for ``drain``, which passes it on to
    the encrypted file from the calling thread only (the subject's key is looked up there, never
    from a worker: the key store reads the database)."""

    def __init__(self, target: EncryptedWriter) -> None:
        super().__init__()
        self._target = target
        self._chunks: deque[bytes] = deque()  # append and popleft are atomic: one thread each

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def drain(self) -> None:
        while self._chunks:
            self._target.write(self._chunks.popleft())


class _Behind:
    """Writes to a ZIP member in one worker thread, in order, at most ``depth`` writes behind the
    caller: the member's CRC and zlib release the GIL, so a batch is compressed while the text of
    the next is made. The compressed bytes are encrypted by the caller (``_Handoff.drain``). A
    failed write is raised by a later ``write`` or at the end of the ``with`` block."""

    def __init__(self, member: IO[bytes], handoff: _Handoff, *, depth: int = 1) -> None:
        self._member = member
        self._handoff = handoff
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-zip")
        self._pending: deque[Future[int]] = deque()

    def write(self, data: bytes) -> None:
        self._pending.append(self._pool.submit(self._member.write, data))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()
        self._handoff.drain()

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._handoff.drain()


class _ParallelDeflate:
    """The compressor of a ZIP member (zipfile calls ``compress`` and ``flush``) that deflates blocks
    of DEFLATE_BLOCK bytes with zlib-ng on DEFLATE_THREADS threads (zlib-ng releases the GIL), as
    pigz does: each block is a raw DEFLATE stream ended by a sync flush (byte-aligned, not final),
    so that the blocks in order, then one empty final block, are one valid DEFLATE stream. Each
    block starts without the previous one's window: the ZIP is about 1% larger."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._pool = ThreadPoolExecutor(max_workers=DEFLATE_THREADS, thread_name_prefix="export-deflate")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()

    def _block(self, data: bytes) -> bytes:
        compressor = zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib_ng.Z_SYNC_FLUSH)

    def compress(self, data: Any) -> bytes:
        self._buffer += data
        while len(self._buffer) >= DEFLATE_BLOCK:
            self._pending.append(self._pool.submit(self._block, bytes(self._buffer[:DEFLATE_BLOCK])))
            del self._buffer[:DEFLATE_BLOCK]
        done = []  # the blocks finished, in order; at most two per thread left in flight
        while self._pending and (self._pending[0].done() or len(self._pending) > 2 * DEFLATE_THREADS):
            done.append(self._pending.popleft().result())
        return b"".join(done)

    def flush(self) -> bytes:
        try:
            if self._buffer:
                self._pending.append(self._pool.submit(self._block, bytes(self._buffer)))
                self._buffer.clear()
            done = [future.result() for future in self._pending]
            self._pending.clear()
            return b"".join(done) + zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, -15).flush()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _open_member(archive: zipfile.ZipFile, name: str) -> IO[bytes]:
    """A member to write, compressed by zlib-ng on several threads (``_ParallelDeflate``) instead of
    the standard zlib on one: the same DEFLATE format (``zipfile`` and every unzip tool read it).
    zipfile has no setting for its compressor: should a later Python rename the attribute, the
    member keeps zlib, slower and never wrong (``test_zip_members_are_compressed_by_zlib_ng`` tells)."""
    # force_zip64: a member's size is unknown while it streams; a long history passes 4 GiB.
    member = archive.open(name, "w", force_zip64=True)
    if getattr(member, "_compressor", None) is not None:
        cast(Any, member)._compressor = _ParallelDeflate(ZIP_LEVEL)
    return member


class IncompleteExport(RuntimeError):
    """The parts do not hold the records the systems reported writing (a part missing or unread)."""


def assemble(
    request_id: uuid.UUID,
    key_id: uuid.UUID,
    descriptions: list[Description],
    expected: dict[str, int] | None = None,
    *,
    specific_pieces: bool = True,
    sold_or_shared: list[dict[str, Any]] | None = None,
) -> tuple[Path, int]:
    """Build the subject's ZIP from the parts, encrypted; remove the parts. Returns (path, size).

    A part's JSON and CSV text is copied into the members as it is, bar CSV rows of a source that
    lacks some of the category's fields (placed under the category's header, ``_placed``). Parts of
    earlier versions are made into text here. ``expected``, the records per category the systems
    reported writing: any other count raises IncompleteExport and keeps no ZIP, never a ZIP with
    data missing. Without ``specific_pieces`` (a CCPA request for the categories only, REGULATIONS.md
    C-12) the ZIP holds the information and ``expected``, the number of records per category the
    systems counted (``count_records``), and no record: no part was written for it.
    ``sold_or_shared``: what was sold or shared about the subject (``consents.sold_or_shared``, C-09).
    A failure leaves the parts for the next try."""
    final = export_root() / str(request_id) / f"export-{uuid.uuid4().hex}.zip.enc"
    final.parent.mkdir(parents=True, exist_ok=True)  # no part made it (a request for the categories only)
    writer = EncryptedWriter(final, key_id=key_id, context=f"compliance.export.{request_id}")
    handoff = _Handoff(writer)
    counts: dict[str, int] = {}
    parts = _parts_by_category(request_id)
    try:
        with zipfile.ZipFile(handoff, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
            if specific_pieces:
                for category, sources in sorted(parts.items()):
                    counts[category] = _add_category(archive, handoff, category, sources)
            else:  # the systems counted their records and wrote no part (count_records)
                counts = {category: count for category, count in sorted((expected or {}).items()) if count}
            info = art15_information(descriptions, specific_pieces=specific_pieces, sold_or_shared=sold_or_shared)
            info["record_counts"] = counts
            archive.writestr("about-this-export.json", json.dumps(info, indent=2, ensure_ascii=False))
            archive.writestr("index.html", _index_html(info, counts))
            for name in ("about-this-export.schema.json", "category.schema.json", "README.md"):  # G-20: its schema
                archive.writestr(f"schema/{name}", (Path(__file__).parent / "export_schema" / name).read_bytes())
        handoff.drain()
    finally:
        writer.close()
    if expected is not None and {k: v for k, v in counts.items() if v} != {k: v for k, v in expected.items() if v}:
        final.unlink(missing_ok=True)
        missing = sorted(k for k in {*counts, *expected} if counts.get(k, 0) != expected.get(k, 0))
        raise IncompleteExport(f"the export parts do not hold the records reported for: {', '.join(missing)}")
    for sources in parts.values():
        for source in sources:
            for path in source.files():
                path.unlink(missing_ok=True)
    return final, final.stat().st_size


def _add_category(archive: zipfile.ZipFile, handoff: _Handoff, category: str, sources: list[_Source]) -> int:
    """Write a category's JSON and CSV members from its parts; returns its number of records."""
    columns: dict[str, None] = {}
    count = 0
    for source in sources:
        if source.rendered:
            index = source.index()
            for section in index["sections"]:
                columns.update(dict.fromkeys(section["columns"]))
            count += index["count"]
        else:
            _part_columns(source.path, source.context, columns)
    header = list(columns)
    with _open_member(archive, f"{category}.json") as member, _Behind(member, handoff) as handle:
        handle.write(b"[\n")
        separator = ""
        for source in sources:
            if source.rendered:
                chunks = read_encrypted(source.path, context=f"{source.context}.json")
                for chunk in _gathered(chunks, separator.encode("utf-8")):
                    handle.write(chunk)
                separator = ",\n"
                continue
            for batch in _part_batches(source.path, source.context):
                handle.write(_json_text(batch, separator).encode("utf-8"))
                separator = ",\n"
                count += batch.count
        handle.write(b"\n]\n")
    with _open_member(archive, f"{category}.csv") as member, _Behind(member, handoff) as handle:
        handle.write(_csv_header(header))
        for source in sources:
            if source.rendered:
                for head, rows in _sections(source.csv_path, f"{source.context}.csv"):
                    handle.write(rows if head["columns"] == header else _placed(rows, head["columns"], header))
                continue
            for batch in _part_batches(source.path, source.context):
                handle.write(_csv_rows(batch, header).encode("utf-8"))
    return count


def _gathered(chunks: Iterable[bytes], first: bytes) -> Iterator[bytes]:
    """The chunks of a file, after ``first``, joined into writes of about MEMBER_WRITE bytes (one
    hand-over to the compressing thread each, not one per 64 KiB)."""
    pending, size = [first], len(first)
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= MEMBER_WRITE:
            yield b"".join(pending)
            pending, size = [], 0
    if size:
        yield b"".join(pending)


def _sections(path: Path, context: str) -> Iterator[tuple[dict[str, Any], bytes]]:
    """The batches of a part's CSV file: each one's line (source, columns, count, bytes) and rows."""
    chunks = read_encrypted(path, context=context)
    buffer = bytearray()

    def fill(size: int) -> bool:
        while len(buffer) < size:
            chunk = next(chunks, None)
            if chunk is None:
                return False
            buffer.extend(chunk)
        return True

    while True:
        end = buffer.find(b"\n")
        while end < 0:
            if not fill(len(buffer) + 1):
                if buffer:
                    raise ValueError("a part's CSV file ends inside a batch's line")
                return
            end = buffer.find(b"\n")
        head = json.loads(bytes(buffer[:end]))
        del buffer[: end + 1]
        size = head["bytes"]
        if not fill(size):
            raise ValueError("a part's CSV file ends inside a batch's rows")
        rows = bytes(buffer[:size])
        del buffer[:size]
        yield head, rows


def _placed(rows: bytes, columns: list[str], header: list[str]) -> bytes:
    """CSV rows of a source with ``columns``, under the category's ``header``: each field in its
    column, the columns the source lacks empty. The text of each field stays as it was."""
    where = {name: i for i, name in enumerate(columns)}
    positions = [where.get(name) for name in header]
    out = []
    for row in csv.reader(io.StringIO(rows.decode("utf-8"), newline="")):
        source, values = row[0], row[1:]
        fields = ["" if i is None else _csv_quoted(values[i]) for i in positions]
        out.append(",".join([_csv_quoted(source), *fields]) + "\r\n")
    return "".join(out).encode("utf-8")


def _index_html(info: dict[str, Any], counts: dict[str, int]) -> str:
    labels = info["category_labels"]
    pieces = info["specific_pieces"]
    rows = "".join(
        f"<tr><td>{html.escape(labels.get(c, c))}</td><td>{n}</td><td>"
        + (f"<a href='{c}.json'>{c}.json</a>, <a href='{c}.csv'>{c}.csv</a>" if pieces else "not included")
        + "</td></tr>"
        for c, n in sorted(counts.items())
    )
    listing = lambda items: "".join(f"<li>{html.escape(str(i))}</li>" for i in items)  # noqa: E731
    opening = (
        "This archive holds a copy of the personal data we hold about you."
        if pieces
        else "You asked which kinds of personal data we hold about you: this archive lists them, with how many "
        "records of each we hold, but not the data itself. Ask for a copy of your data to receive it."
    )
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>Your data</title>"
        f"<h1>Your personal data</h1><p>{opening}</p>"
        f"<table><tr><th>category</th><th>records</th><th>files</th></tr>{rows}</table>"
        + (
            "<h2>Held but never shown</h2><p>We hold these, but never disclose them, even to you:</p>"
            f"<ul>{listing(info['withheld'])}</ul>"
            if info["withheld"]
            else ""
        )
        + f"<h2>Why we use it</h2><ul>{listing(info['purposes'])}</ul>"
        + _sold_or_shared_html(info["sold_or_shared"], labels)
        + "<h2>Disclosed for a business purpose</h2><ul>"
        + listing(
            f"{d['system']}: {', '.join(labels.get(c, c) for c in d['categories'])} to {'; '.join(d['recipients'])}"
            for d in info["disclosed_for_business_purpose"]
        )
        + "</ul>"
        f"<h2>Legal bases</h2><ul>{listing(info['lawful_bases'])}</ul>"
        f"<h2>Who receives it</h2><ul>{listing(info['recipients'])}</ul>"
        f"<h2>Where it comes from</h2><ul>{listing(info['sources'])}</ul>"
        f"<h2>How long we keep it</h2><ul>{listing(f'{k}: {v}' for k, v in info['retention'].items())}</ul>"
        f"<h2>Your rights</h2><ul>{listing(info['your_rights'])}</ul><p>{html.escape(info['complaint'])}</p>"
        f"<h2>Automated decisions</h2><p>{html.escape(info['automated_decision_making'])}</p>"
        f"<h2>Transfers</h2><p>{html.escape(info['international_transfers'])}</p></html>"
    )


def _sold_or_shared_html(entries: list[dict[str, Any]], labels: dict[str, str]) -> str:
    """The CCPA's "sold or shared" answer (C-09): each sale or sharing with its periods, or that there was none."""
    if not entries:
        return "<h2>Sold or shared</h2><p>We have not sold or shared your personal information.</p>"
    items = []
    for entry in entries:
        spans = ", ".join(
            f"from {span['from'][:10]} to {span['until'][:10]}" if span["until"] else f"since {span['from'][:10]}"
            for span in entry["periods"]
        )
        categories = ", ".join(labels.get(c, c) for c in entry["categories"])
        items.append(
            f"<li>{html.escape(entry['label'])}: your {html.escape(categories)}, {html.escape(entry['disclosure'])} "
            f"with {html.escape('; '.join(entry['third_parties']))}, while you allowed it ({html.escape(spans)})</li>"
        )
    return f"<h2>Sold or shared</h2><ul>{''.join(items)}</ul>"


def stream_for_owner(export_path: str, request_id: uuid.UUID) -> Iterator[bytes]:
    """The decrypted ZIP, chunk by chunk, for a download response (flat memory)."""
    return read_encrypted(Path(export_path), context=f"compliance.export.{request_id}")


def delete_export_files(request_id: uuid.UUID) -> None:
    """Remove every file of a request's export (parts and ZIP)."""
    folder = export_root() / str(request_id)
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            path.unlink(missing_ok=True)
        else:
            path.rmdir()
    folder.rmdir()
