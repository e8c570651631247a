"""Export files: streamed, encrypted at rest in chunks under the subject's key, and the ZIP a subject gets.

The ZIP holds, per category of personal data, one JSON file and one CSV file (long form: source,
record, field, value, so that it can be written as a stream), the information GDPR Art. 15 requires
beside the data (``about-this-export.json``) and a readable summary (``index.html``). Parts and the ZIP
are written through ``EncryptedWriter``: AES-256-GCM chunks of 64 KiB under the subject's key, so a
copy on disk or in a backup is unreadable once the subject's key is destroyed. Memory stays flat:
records are streamed from the systems to the parts, and from the parts into the ZIP.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import struct
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from compliance.registry import Category, LawfulBasis
from compliance.systems.base import Description, Record
from identity.crypto import envelope

CHUNK = 64 * 1024
_LEN = struct.Struct(">I")


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
        view = bytes(data)
        self._buffer += view
        while len(self._buffer) >= CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        self.size += len(view)
        return len(view)

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
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def export_root() -> Path:
    root = Path(settings.EXPORT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def part_path(request_id: uuid.UUID, system: str, category: str) -> Path:
    folder = export_root() / str(request_id) / "parts"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{system}__{category}")
    return folder / f"{safe}.jsonl.enc"


def part_context(request_id: uuid.UUID, system: str, category: str) -> str:
    return f"compliance.export-part.{request_id}.{system}.{category}"


def write_parts(request_id: uuid.UUID, system: str, key_id: uuid.UUID, records: Iterable[Record]) -> dict[str, int]:
    """Stream a system's records into one encrypted JSON-lines part per category; returns counts.

    Parts are written to temporary names and renamed at the end, so a crash leaves no half part
    behind: the task runs again from the start (idempotent)."""
    writers: dict[str, tuple[EncryptedWriter, Path]] = {}
    counts: dict[str, int] = {}
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode  # one encoder for every record
    try:
        for record in records:
            if record.category not in writers:
                final = part_path(request_id, system, record.category)
                temporary = final.with_suffix(".tmp")
                writers[record.category] = (
                    EncryptedWriter(
                        temporary, key_id=key_id, context=part_context(request_id, system, record.category)
                    ),
                    final,
                )
            line = encode({"source": record.source, "values": record.values})
            writers[record.category][0].write(line.encode("utf-8") + b"\n")
            counts[record.category] = counts.get(record.category, 0) + 1
    finally:
        for writer, _ in writers.values():
            writer.close()
    for _writer, final in writers.values():
        os.replace(final.with_suffix(".tmp"), final)
    return counts


def _parts_by_category(request_id: uuid.UUID) -> dict[str, list[tuple[str, Path]]]:
    folder = export_root() / str(request_id) / "parts"
    found: dict[str, list[tuple[str, Path]]] = {}
    for path in sorted(folder.glob("*.jsonl.enc")) if folder.exists() else []:
        system, _, category = path.name[: -len(".jsonl.enc")].partition("__")
        found.setdefault(category, []).append((system, path))
    return found


def art15_information(descriptions: list[Description]) -> dict[str, Any]:
    """GDPR Art. 15(1)(a)-(h) and 15(2) beside the data (REGULATIONS.md G-15)."""
    return {
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
        "lawful_basis_labels": {b.value: b.label for b in LawfulBasis},
        "category_labels": {c.value: c.label for c in Category},
    }


def assemble(request_id: uuid.UUID, key_id: uuid.UUID, descriptions: list[Description]) -> tuple[Path, int]:
    """Build the subject's ZIP from the parts, encrypted; remove the parts. Returns (path, size)."""
    final = export_root() / str(request_id) / f"export-{uuid.uuid4().hex}.zip.enc"
    writer = EncryptedWriter(final, key_id=key_id, context=f"compliance.export.{request_id}")
    counts: dict[str, int] = {}
    parts = _parts_by_category(request_id)
    with zipfile.ZipFile(writer, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for category, sources in sorted(parts.items()):
            with archive.open(f"{category}.json", "w") as handle:
                handle.write(b"[\n")
                first = True
                for system, path in sources:
                    for line in _lines(read_encrypted(path, context=part_context(request_id, system, category))):
                        handle.write((b"" if first else b",\n") + line)
                        first = False
                        counts[category] = counts.get(category, 0) + 1
                handle.write(b"\n]\n")
            with archive.open(f"{category}.csv", "w") as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                out = csv.writer(text)
                out.writerow(["source", "record", "field", "value"])
                number = 0
                for system, path in sources:
                    for line in _lines(read_encrypted(path, context=part_context(request_id, system, category))):
                        number += 1
                        item = json.loads(line)
                        for field, value in item["values"].items():
                            out.writerow(
                                [
                                    item["source"],
                                    number,
                                    field,
                                    json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value,
                                ]
                            )
                text.flush()
                text.detach()
        info = art15_information(descriptions)
        info["record_counts"] = counts
        archive.writestr("about-this-export.json", json.dumps(info, indent=2, ensure_ascii=False))
        archive.writestr("index.html", _index_html(info, counts))
    writer.close()
    for _, sources in parts.items():
        for _, path in sources:
            path.unlink(missing_ok=True)
    return final, final.stat().st_size


def _index_html(info: dict[str, Any], counts: dict[str, int]) -> str:
    labels = info["category_labels"]
    rows = "".join(
        f"<tr><td>{html.escape(labels.get(c, c))}</td><td>{n}</td><td><a href='{c}.json'>{c}.json</a>, "
        f"<a href='{c}.csv'>{c}.csv</a></td></tr>"
        for c, n in sorted(counts.items())
    )
    listing = lambda items: "".join(f"<li>{html.escape(str(i))}</li>" for i in items)  # noqa: E731
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>Your data</title>"
        "<h1>Your personal data</h1><p>This archive holds a copy of the personal data we hold about you.</p>"
        f"<table><tr><th>category</th><th>records</th><th>files</th></tr>{rows}</table>"
        f"<h2>Why we use it</h2><ul>{listing(info['purposes'])}</ul>"
        f"<h2>Legal bases</h2><ul>{listing(info['lawful_bases'])}</ul>"
        f"<h2>Who receives it</h2><ul>{listing(info['recipients'])}</ul>"
        f"<h2>Where it comes from</h2><ul>{listing(info['sources'])}</ul>"
        f"<h2>How long we keep it</h2><ul>{listing(f'{k}: {v}' for k, v in info['retention'].items())}</ul>"
        f"<h2>Your rights</h2><ul>{listing(info['your_rights'])}</ul><p>{html.escape(info['complaint'])}</p>"
        f"<h2>Automated decisions</h2><p>{html.escape(info['automated_decision_making'])}</p>"
        f"<h2>Transfers</h2><p>{html.escape(info['international_transfers'])}</p></html>"
    )


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
