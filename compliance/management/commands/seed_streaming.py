"""Fill the demo streaming-history database (a connected system, issue #4) with made-up data."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from compliance.systems import streaming_demo
from compliance.systems.sql import redact_url


class Command(BaseCommand):
    help = (
        "Fill the streaming-history database (STREAMING_DATABASE_URL) with made-up listening events, "
        "playlists, followed artists, devices and invoices. Listeners who already have data are skipped, "
        "never duplicated; --reset --yes empties the database first. Development and benchmarks only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--users-from-accounts", action="store_true", help="every listener (non-staff account) in the database"
        )
        parser.add_argument("--user", action="append", default=[], metavar="ID", help="a user id (repeatable)")
        parser.add_argument("--events", type=int, default=200, metavar="N", help="listening events per listener")
        parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same data)")
        parser.add_argument("--database-url", default="", help="default: STREAMING_DATABASE_URL")
        parser.add_argument("--reset", action="store_true", help="drop and recreate the demo tables first")
        parser.add_argument("--yes", action="store_true", help="confirm --reset (it deletes every row)")
        parser.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off (never in production)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(
        self,
        *args: Any,
        users_from_accounts: bool,
        user: list[str],
        events: int,
        seed: int,
        database_url: str,
        reset: bool,
        yes: bool,
        dry_run: bool,
        force: bool,
        no_progress: bool,
        **options: Any,
    ) -> None:
        if not settings.DEBUG and not force:
            raise CommandError("seed_streaming writes made-up data; it runs only with DJANGO_DEBUG=1 (or --force)")
        if events < 0:
            raise CommandError("--events must be 0 or more")
        url = database_url or str(getattr(settings, "STREAMING_DATABASE_URL", "") or "")
        if not url:
            raise CommandError("no streaming database: set STREAMING_DATABASE_URL or pass --database-url")
        if reset and not yes:
            raise CommandError(f"--reset deletes every row in {redact_url(url)}; add --yes to confirm")
        user_ids = list(dict.fromkeys(user))
        if users_from_accounts:
            listeners = get_user_model().objects.filter(is_staff=False).order_by("pk").values_list("pk", flat=True)
            user_ids += [str(pk) for pk in listeners if str(pk) not in user_ids]
        if not user_ids and not reset:
            raise CommandError("name the listeners: --users-from-accounts or --user ID")

        where = redact_url(url)
        existing: set[str] = set()
        if not reset and streaming_demo.schema_exists(url):
            existing = streaming_demo.users_with_data(url, user_ids)
        to_seed = [u for u in user_ids if u not in existing]
        if dry_run:
            if reset:
                self.stdout.write(f"dry run: would empty the demo tables in {where}")
            self.stdout.write(
                f"dry run: would seed {len(to_seed)} listeners ({len(to_seed) * events} listening events) "
                f"and skip {len(existing)} who already have streaming data"
            )
            return

        if reset:
            streaming_demo.drop_schema(url)
            streaming_demo.create_schema(url)
            self.stdout.write(f"emptied the demo tables in {where}")
        bar = tqdm(
            total=len(to_seed) * events, desc="listening events", unit="event", disable=no_progress, file=self.stderr
        )
        try:
            result = streaming_demo.seed(url, to_seed, events_per_user=events, seed=seed, progress=bar.update)
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(f"seeded {len(result.seeded)} listeners ({result.events} listening events) in {where}")
        )
        skipped = len(existing) + len(result.skipped)
        if skipped:
            self.stdout.write(
                f"skipped {skipped} listeners who already have streaming data (--reset --yes to start over)"
            )
