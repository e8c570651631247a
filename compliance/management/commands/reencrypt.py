"""Rewrite encrypted values under their row's current data key and ciphertext version, in batches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from compliance.keys import reencrypt, total_encrypted_rows
from identity.crypto.errors import EncryptionError


class Command(BaseCommand):
    help = (
        "Re-encrypt stored values that are not under their row's current data key or ciphertext "
        "version (--all: every value, with fresh nonces, which also proves each still authenticates). "
        "Batched, with a progress bar; safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="count what would be rewritten; change nothing")
        parser.add_argument("--all", action="store_true", dest="everything", help="rewrite every value")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(
        self, *args: Any, batch_size: int, dry_run: bool, everything: bool, no_progress: bool, **options: Any
    ) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        bar = tqdm(
            total=total_encrypted_rows(),
            desc="re-encrypting",
            unit="row",
            disable=no_progress,
            file=self.stderr,
        )
        try:
            result = reencrypt(batch_size=batch_size, dry_run=dry_run, everything=everything, progress=bar.update)
        except EncryptionError as exc:
            raise CommandError(f"re-encryption stopped: {exc}. Nothing after that row was changed.") from exc
        finally:
            bar.close()
        verb = "would rewrite" if dry_run else "rewrote"
        count = result.stale if dry_run else result.rewritten
        self.stdout.write(
            f"{'dry run: ' if dry_run else ''}scanned {result.scanned} rows, {verb} {count}"
            + (f", skipped {result.erased_skipped} of erased subjects" if result.erased_skipped else "")
        )
