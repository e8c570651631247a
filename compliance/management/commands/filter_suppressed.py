"""Filter an imported list of people against the suppression list of erased subjects.

    python manage.py filter_suppressed contacts.csv --column email > usable.csv
    python manage.py filter_suppressed - < contacts.csv > usable.csv

Reads CSV (with a header row), writes the rows whose address is not suppressed to standard output,
and says on standard error how many rows were dropped, never which. Rows without a usable address
are dropped and counted apart. Exit status 2 on a missing file or column.
"""

from __future__ import annotations

import csv
import itertools
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
        counts = {"kept": 0, "dropped": 0, "no address": 0}
        try:
            reader = csv.DictReader(source)
            fields = list(reader.fieldnames or [])
            if fields and column not in fields:
                raise CommandError(f"{path}: no column {column!r} (the columns are: {', '.join(fields)})", returncode=2)
            writer = csv.DictWriter(self.stdout, fieldnames=fields, lineterminator="\n")
            if fields:
                writer.writeheader()
            # A batch at a time, so that a list of millions is read, checked and written in flat memory.
            while batch := list(itertools.islice(reader, suppression.BATCH)):
                usable = [r for r in batch if "@" in (r.get(column) or "")]
                counts["no address"] += len(batch) - len(usable)
                suppressed = suppression.suppressed_among(r[column] for r in usable)
                for row in usable:
                    if row[column] in suppressed:
                        counts["dropped"] += 1
                    else:
                        writer.writerow(row)
                        counts["kept"] += 1
        finally:
            if source is not sys.stdin:
                source.close()
        self.stderr.write(
            f"{counts['kept']} rows kept, {counts['dropped']} dropped (erased subjects), "
            f"{counts['no address']} without an address"
        )
