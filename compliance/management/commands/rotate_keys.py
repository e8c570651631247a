"""Rewrap every subject's data key under the newest key-encryption key (the first in FIELD_ENCRYPTION_KEYS)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from compliance.keys import rotate_keys
from identity.crypto.errors import EncryptionError
from identity.crypto.kek import keyring


class Command(BaseCommand):
    help = (
        "Rewrap every data key under the current key-encryption key (the first of FIELD_ENCRYPTION_KEYS). "
        "Safe to interrupt and run again. Remove the old key from FIELD_ENCRYPTION_KEYS only after "
        "a run reports nothing left."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="count what would be rewrapped; change nothing")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, batch_size: int, dry_run: bool, no_progress: bool, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        current = keyring().current_id
        bar = tqdm(desc="rewrapping data keys", unit="key", disable=no_progress or dry_run, file=self.stderr)
        try:
            result = rotate_keys(batch_size=batch_size, dry_run=dry_run, progress=bar.update)
        except EncryptionError as exc:
            raise CommandError(f"rotation stopped: {exc}. Fix the key configuration and run again.") from exc
        finally:
            bar.close()
        if dry_run:
            self.stdout.write(f"dry run: {result.pending} data keys would be rewrapped under {current!r}")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"rewrapped {result.rewrapped} data keys under {current!r} "
                f"({result.skipped} changed concurrently and were left alone)"
            )
        )
