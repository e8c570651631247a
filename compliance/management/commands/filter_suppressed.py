"""Filter an imported list of people against the suppression list of erased subjects.

    python manage.py filter_suppressed contacts.csv --column email > usable.csv
    python manage.py filter_suppressed - < contacts.csv > usable.csv

Reads CSV (with a header row), writes the rows whose address is not suppressed to standard output,
and says on standard error how many rows were dropped, never which. Rows without a usable address
are dropped and counted apart. Exit status 2 on a missing file or column.
"""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance import suppression


class Command(BaseCommand):
    help = "Drop erased subjects (the suppression list) from an imported CSV list; the rest goes to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the CSV file, or - for standard input")
        parser.add_argument("--column", default="email", help="the column holding the e-mail address")

    def handle(self, *args: Any, **options: Any) -> None:
        path, column = options["path"], options["column"]
        try:
            source = sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"{path}: cannot be read ({exc.strerror})", returncode=2) from exc
        with source:
            rows = list(csv.DictReader(source))
            fields = list(rows[0].keys()) if rows else []
        if rows and column not in fields:
            raise CommandError(f"{path}: no column {column!r} (the columns are: {', '.join(fields)})", returncode=2)
        usable = [r for r in rows if "@" in (r.get(column) or "")]
        suppressed = suppression.suppressed_among(r[column] for r in usable)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        if fields:
            writer.writeheader()
        kept = 0
        for row in usable:
            if row[column] not in suppressed:
                writer.writerow(row)
                kept += 1
        self.stdout.write(out.getvalue(), ending="")
        dropped = sum(1 for r in usable if r[column] in suppressed)
        self.stderr.write(
            f"{kept} rows kept, {dropped} dropped (erased subjects), {len(rows) - len(usable)} without an address"
        )
