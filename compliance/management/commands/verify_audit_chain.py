"""Prove the event log was not rewritten: exit 0 when intact, 1 naming the first broken entry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the audit event log. Exits 0 when every entry is intact; "
        "otherwise exits 1 and names the first altered, inserted or deleted entry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=2000, help="entries read per database round trip")

    def handle(self, *args: Any, chunk_size: int, **options: Any) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        report = verify_chain(chunk_size=chunk_size)
        if report.problem is not None:
            raise CommandError(
                f"audit chain BROKEN at {report.problem} ({report.length} entries verified before it)",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {report.length} entries, head {report.head_hash}"))
