"""Sign-in benchmark: what a sign-in costs beyond its password hash, and GET /api/v1/me under gunicorn.

    python -m tests.benchmarks.signin [--signins N] [--profile P] [--seconds S] [--json PATH] ...
    make bench SIGNIN_BENCH_ARGS="--signins 100 --seconds 5"     # SQLite, a temporary file
    DATABASE_URL=postgresql://... make bench                       # PostgreSQL, a fresh <name>_signin_bench

What is measured, and what the figures mean: docs/benchmarks.md, "Sign-in". In short:

1. Sign-in overhead. ``POST /api/v1/auth/login`` through Django's test Client, in this process,
   for a listener whose device is already known (so the risk engine allows it and tokens are
   issued). The hasher's verify is timed inside each sign-in; the overhead is the median of each
   sign-in minus its own hash: the risk engine, token issue, the security event, django-axes,
   middleware and DRF. Target: at most 10 ms. (Also timed, interleaved: the verify alone on the
   same stored hash, and median(sign-in) - median(that), the figure earlier runs reported.) Also
   p90, SQL statements per sign-in, time in SQL, and a cProfile breakdown of a few hundred sign-ins.
2. Throughput. gunicorn with deploy/gunicorn.conf.py (2 workers) serves the benchmark URLconf;
   a load generator in another process (tests/benchmarks/loadgen.py) sends ``GET /api/v1/me``
   with a valid bearer token, and ``GET /bench/bare`` (a DRF view with no authentication and no
   database), alternately, for the same time each, with the same concurrency. Target: /me at least
   60% of the bare endpoint's requests per second.

Every figure is set against a baseline measured in the same run (these machines are noisy). A
missed target is reported as MISS, never as an exit status: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import functools
import gc
import http.client
import importlib
import io
import json
import os
import platform
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks.loadgen import percentile

SETTINGS_MODULE = "tests.benchmarks.signin_settings"
BASE_DIR = Path(__file__).resolve().parent.parent.parent
OUR_PACKAGES = ("accounts", "identity", "compliance")
OVERHEAD_TARGET_MS = 10.0  # risk engine + token issue + audit writes, at the median
THROUGHPUT_TARGET = 0.60  # GET /api/v1/me at least 60% of the bare endpoint's requests/s

LOGIN_PATH = "/api/v1/auth/login"
ME_PATH = "/api/v1/me"
BARE_PATH = "/bench/bare"
PASSWORD = "violet elephants juggle quietly at dawn"
SIGNIN_EMAIL = "bench.listener@example.org"
ME_EMAIL = "bench.profile@example.org"
CLIENT_IP = "203.0.113.7"  # TEST-NET-3: a public-looking address, so the IP and network indexes are real
DEVICE = {"id": "bench-device-0001", "name": "Pixel 8", "platform": "android"}
USER_AGENT = "IdentityApp/3.2 (Android 14; Pixel 8)"
TOKEN_REFRESH_AFTER_S = 10 * 60  # access tokens live 15 minutes: sign in again well before


# --- set-up ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.signin",
        description="Benchmark the sign-in overhead (risk engine, tokens, audit) and GET /api/v1/me under gunicorn.",
    )
    size = parser.add_argument_group("sign-in overhead (in process)")
    size.add_argument("--signins", type=int, default=200, help="timed sign-ins, and as many hashes (default 200)")
    size.add_argument("--warmup", type=int, default=20, help="untimed sign-ins and hashes first (default 20)")
    size.add_argument("--profile", type=int, default=300, help="sign-ins under cProfile; 0: none (default 300)")
    size.add_argument("--queries", type=int, default=20, help="sign-ins with SQL counted and timed (default 20)")
    size.add_argument("--stages", type=int, default=100, help="sign-ins with each stage timed (default 100)")
    size.add_argument(
        "--history", type=int, default=None, help="earlier successful sign-ins of the account (default HISTORY_DEPTH)"
    )
    size.add_argument("--top", type=int, default=15, help="profile entries listed (default 15)")
    size.add_argument(
        "--requests", type=int, default=500, help="in-process GET /me and /bench/bare each, for context (default 500)"
    )
    load = parser.add_argument_group("throughput (gunicorn)")
    load.add_argument("--seconds", type=float, default=10.0, help="counted seconds per endpoint per round (default 10)")
    load.add_argument("--rounds", type=int, default=2, help="rounds, each endpoint once per round (default 2)")
    load.add_argument("--concurrency", type=int, default=4, help="client threads in all (default 4)")
    load.add_argument(
        "--client-processes", type=int, default=2, help="processes the client threads are spread over (default 2)"
    )
    load.add_argument("--workers", type=int, default=2, help="gunicorn workers, WEB_CONCURRENCY (default 2)")
    load.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="GUNICORN_MAX_REQUESTS; 0 (the default here): workers are not recycled during the run",
    )
    load.add_argument("--no-http", action="store_true", help="skip the gunicorn part")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    if args.signins < 10 or args.requests < 10 or min(args.warmup, args.queries, args.stages) < 1 or args.profile < 0:
        parser.error("--signins and --requests must be at least 10, --warmup, --queries and --stages at least 1")
    if args.seconds <= 0 or min(args.rounds, args.concurrency, args.client_processes, args.workers) < 1:
        parser.error("--seconds must be > 0; --rounds, --concurrency, --client-processes and --workers at least 1")
    if args.max_requests < 0:
        parser.error("--max-requests must be at least 0")
    return args


def setup_django(tmpdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["BENCH_SQLITE_PATH"] = str(tmpdir / "bench.sqlite3")
    import django

    django.setup()


def migrate() -> float:
    from django.core.management import call_command

    start = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - start


def git_revision() -> dict[str, Any]:
    """The commit measured, and how many tracked files differed from it (read-only git commands)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD"), "modified_files": len(changed.splitlines())}


# --- data -----------------------------------------------------------------------------------------
def make_listener(email: str) -> Any:
    from accounts.models import User

    return User.objects.create_user(
        email=email,
        password=PASSWORD,
        display_name="Bench Listener",
        date_of_birth=datetime.date(1991, 3, 14),
        country="DE",
        region="DE-BE",
        phone="+49 30 5550123",
    )


def known_device_and_history(user: Any, history: int) -> None:
    """The device the benchmark signs in from, already known; and ``history`` earlier sign-ins.

    The earlier sign-ins come from the same device and network, one a day at this hour of day, so
    that no signal fires (the hour is usual, the network seen) and the engine reads a full history.
    """
    from django.db import transaction

    from accounts.models import KnownDevice, SecurityEvent
    from accounts.risk.engine import Assessment, indexes_for
    from accounts.services.events import record_event
    from identity.crypto.blind import email_index

    idx = indexes_for(account_index=email_index(user.email), ip=CLIENT_IP, place=None, device_id=DEVICE["id"])
    now = datetime.datetime.now(datetime.UTC)
    context = {
        "ip": CLIENT_IP,
        "user_agent": USER_AGENT,
        "device_name": DEVICE["name"],
        "platform": DEVICE["platform"],
        "place": None,
        "idx": {"ip": idx.ip, "network": idx.network, "country": idx.country, "device": idx.device},
    }
    allow = Assessment(score=0, level="low", decision="allow", reasons=[])
    with transaction.atomic():
        device = KnownDevice.objects.create(
            user=user,
            data_key_id=user.data_key_id,
            device_index=idx.device,
            name=DEVICE["name"],
            platform=DEVICE["platform"],
            first_seen_at=now - datetime.timedelta(days=history + 1),
        )
        events = []
        for day in range(history, 0, -1):
            event = record_event(
                SecurityEvent.Kind.SIGNIN, user=user, idx=idx, assessment=allow, device=device, context=context
            )
            event.occurred_at = now - datetime.timedelta(days=day)
            events.append(event)
        SecurityEvent.objects.bulk_update(events, ["occurred_at"])


def login_body(email: str) -> str:
    return json.dumps({"email": email, "password": PASSWORD, "device": DEVICE})


# --- (1) sign-in overhead ---------------------------------------------------------------------------
def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p90 and friends of a list of seconds, in milliseconds."""
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "n": len(ordered),
    }


class SignInDriver:
    """Signs the benchmark listener in through the test Client, as the app does, and checks the answer."""

    def __init__(self, email: str) -> None:
        from django.contrib.auth.hashers import check_password
        from django.test import Client

        from accounts.models import User

        self.client = Client()
        self.body = login_body(email)
        self.encoded = User.objects.with_email(email).values_list("password", flat=True).get()
        self._check_password = check_password

    def sign_in(self) -> float:
        self.client.cookies.clear()  # an API client keeps no cookies between sign-ins
        start = time.perf_counter()
        response = self.client.post(
            LOGIN_PATH,
            self.body,
            content_type="application/json",
            REMOTE_ADDR=CLIENT_IP,
            HTTP_USER_AGENT=USER_AGENT,
        )
        elapsed = time.perf_counter() - start
        check_tokens(response.status_code, response.content)
        return elapsed

    def hash_only(self) -> float:
        start = time.perf_counter()
        ok = self._check_password(PASSWORD, self.encoded)
        elapsed = time.perf_counter() - start
        if not ok:
            raise AssertionError("the stored hash does not verify the benchmark password")
        return elapsed


def check_tokens(status: int, content: bytes) -> dict[str, Any]:
    """A sign-in the risk engine allowed with no signal fired, and tokens issued: what we measure."""
    body: dict[str, Any] = json.loads(content) if content else {}
    risk = body.get("risk") or {}
    if status != 200 or "access" not in body or risk.get("reasons"):
        raise AssertionError(f"expected tokens and no risk signal, got HTTP {status}: {content[:300]!r}")
    return body


@contextlib.contextmanager
def own_hash_timer() -> Iterator[list[float]]:
    """Time the password hasher's ``verify`` inside each sign-in: the sign-in minus its *own*
    hash is the overhead, exactly, whatever the machine's speed does between two separate calls
    (Argon2id at 46 MiB swings by tens of milliseconds on a shared VM)."""
    from django.contrib.auth.hashers import get_hasher

    hasher = type(get_hasher())
    original = hasher.verify
    spent: list[float] = []

    def verify(self: Any, password: str, encoded: str) -> bool:
        start = time.perf_counter()
        try:
            return bool(original(self, password, encoded))
        finally:
            spent.append(time.perf_counter() - start)

    hasher.verify = verify  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        hasher.verify = original  # type: ignore[method-assign]


def measure_signin(driver: SignInDriver, *, warmup: int, signins: int) -> dict[str, Any]:
    for _ in range(warmup):
        driver.sign_in()
        driver.hash_only()
    gc.collect()
    signin_s: list[float] = []
    hash_s: list[float] = []
    own_s: list[float] = []
    with own_hash_timer() as spent:
        for i in range(signins):
            # Interleaved, the order swapped every time: both see the same machine, caches and drift.
            if i % 2:
                hash_s.append(driver.hash_only())
                spent.clear()
                signin_s.append(driver.sign_in())
                own_s.append(sum(spent))
            else:
                spent.clear()
                signin_s.append(driver.sign_in())
                own_s.append(sum(spent))
                hash_s.append(driver.hash_only())
    # The target's figure: each sign-in minus the hash it ran itself (one verify per sign-in).
    own = summary([s - h for s, h in zip(signin_s, own_s, strict=True)])
    # For comparison with earlier runs: median(sign-in) - median(separate hash), and the p90 of each
    # sign-in minus the separate hash timed next to it (a difference of two p90s is not one).
    paired = summary([s - h for s, h in zip(signin_s, hash_s, strict=True)])
    signin, hashing = summary(signin_s), summary(hash_s)
    return {
        "signin": signin,
        "hash": hashing,
        "own_hash": summary(own_s),
        "own_overhead": own,
        "overhead_median_ms": own["median_ms"],
        "overhead_p90_ms": own["p90_ms"],
        "separate_overhead_median_ms": signin["median_ms"] - hashing["median_ms"],
        "paired_overhead": paired,
    }


@contextlib.contextmanager
def sql_timer() -> Iterator[dict[str, float]]:
    """Time spent in the database driver: every statement, and every COMMIT."""
    from django.db import connection

    totals = {"statements_s": 0.0, "commit_s": 0.0, "commits": 0}

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            totals["statements_s"] += time.perf_counter() - start

    original_commit = connection._commit

    def timed_commit() -> Any:
        start = time.perf_counter()
        try:
            return original_commit()
        finally:
            totals["commit_s"] += time.perf_counter() - start
            totals["commits"] += 1

    connection._commit = timed_commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(wrapper):
            yield totals
    finally:
        del connection._commit


def _statement_kind(sql: str) -> str:
    """'SELECT accounts_user', 'INSERT axes_accesslog', 'BEGIN', ...: what a statement does, and to what."""
    words = sql.replace('"', "").replace("`", "").split()
    if not words:
        return "?"
    verb = words[0].upper()
    table = ""
    if verb in ("SELECT", "DELETE"):
        upper = [w.upper() for w in words]
        if "FROM" in upper:
            table = words[upper.index("FROM") + 1]
            if table.startswith("("):  # SELECT COUNT(*) FROM (SELECT ... FROM t ...)
                inner = upper[upper.index("FROM") + 1 :]
                table = words[upper.index("FROM") + 1 + inner.index("FROM") + 1] if "FROM" in inner else "subquery"
    elif verb == "INSERT" and len(words) > 2:
        table = words[2]
    elif verb == "UPDATE" and len(words) > 1:
        table = words[1]
    elif verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return "SAVEPOINT/RELEASE" if verb != "ROLLBACK" else "ROLLBACK"
    return f"{verb} {table}".strip()


def measure_queries(driver: SignInDriver, *, signins: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts: list[int] = []
    kinds: Counter[str] = Counter()
    with sql_timer() as sql:
        for _ in range(signins):
            with CaptureQueriesContext(connection) as ctx:
                driver.sign_in()
            counts.append(len(ctx.captured_queries))
            kinds = Counter(_statement_kind(q["sql"]) for q in ctx.captured_queries)  # the last sign-in's
    transaction_words = ("BEGIN", "COMMIT", "SAVEPOINT/RELEASE", "ROLLBACK")
    return {
        "per_signin": statistics.median(counts),
        "min": min(counts),
        "max": max(counts),
        "data_statements": sum(n for k, n in kinds.items() if not k.startswith(transaction_words)),
        "kinds": dict(kinds.most_common()),
        "sql_ms_per_signin": sql["statements_s"] / signins * 1000,
        "commit_ms_per_signin": sql["commit_s"] / signins * 1000,
        "commits_per_signin": sql["commits"] / signins,
    }


# --- stages, timed without a profiler ---------------------------------------------------------------
# (label, module[:class], attribute): each is wrapped in a timer for a pass of sign-ins, then put back.
# The view calls sign_in, and sign_in calls the others, by the names imported into their modules.
TIMED_STAGES = [
    ("sign_in (its transaction and COMMIT included)", "accounts.api.views", "sign_in"),
    ("  authenticate: axes, backend, Argon2 verify", "accounts.services.signin", "authenticate"),
    ("  risk: indexes_for", "accounts.services.signin", "indexes_for"),
    ("  risk: read_history", "accounts.services.signin", "read_history"),
    ("  risk: is_on_blocklist", "accounts.services.signin", "is_on_blocklist"),
    ("  risk: assess", "accounts.services.signin", "assess"),
    ("  remember_device (a device seen for the first time)", "accounts.services.signin", "remember_device"),
    ("  _seen_device (a known device: its UPDATE goes with the session)", "accounts.services.signin", "_seen_device"),
    ("  build_event (the event, written by start_api_session)", "accounts.services.signin", "build_event"),
    ("  start_api_session (session, tokens, user, event, axes reset)", "accounts.services.signin", "start_api_session"),
    ("  _after_success (new-sign-in notice)", "accounts.services.signin", "_after_success"),
    ("SessionMiddleware.process_response", "django.contrib.sessions.middleware:SessionMiddleware", "process_response"),
]


# What the target names: the risk engine, token issue and audit writes (not the password check,
# not the request around sign_in).
NAMED_STAGES = ("risk:", "remember_device", "_seen_device", "build_event", "start_api_session", "_after_success")


@contextlib.contextmanager
def timed_stages(stages: list[tuple[str, str, str]]) -> Iterator[dict[str, float]]:
    """Wrap each stage's function in a timer; yield the seconds spent per stage (reset it per sign-in)."""
    spent: dict[str, float] = {}
    undo: list[Callable[[], None]] = []

    def timer(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start

        return timed

    try:
        for label, target, attr in stages:
            module_name, _, class_name = target.partition(":")
            owner: Any = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name, None)
            original = getattr(owner, attr, None)
            if original is None or not callable(original):
                continue  # renamed since: reported as n/a
            own = not class_name or attr in vars(owner)
            setattr(owner, attr, timer(original, label))
            undo.append(
                functools.partial(setattr, owner, attr, original) if own else functools.partial(delattr, owner, attr)
            )
        yield spent
    finally:
        for step in reversed(undo):
            step()


def measure_stages(driver: SignInDriver, *, signins: int) -> dict[str, Any]:
    """Median milliseconds per stage over ``signins`` sign-ins, each followed by a hash timed alone,
    so that the hash inside ``authenticate`` can be taken out with a median from the same pass."""
    per_stage: dict[str, list[float]] = {label: [] for label, _, _ in TIMED_STAGES}
    requests: list[float] = []
    hashes: list[float] = []
    with timed_stages(TIMED_STAGES) as spent:
        for _ in range(signins):
            spent.clear()
            requests.append(driver.sign_in())
            hashes.append(driver.hash_only())
            for label in per_stage:
                if label in spent:
                    per_stage[label].append(spent[label])
    rows = []
    for label, values in per_stage.items():
        # A stage this sign-in path never calls (remember_device for a known device) counts 0.
        median_ms = statistics.median(values) * 1000 if len(values) == signins else 0.0 if not values else None
        rows.append({"stage": label, "median_ms": median_ms})
    request_ms = statistics.median(requests) * 1000
    sign_in_ms = rows[0]["median_ms"]
    inner = [r["median_ms"] for r in rows if r["stage"].startswith("  ")]
    rest = sign_in_ms - sum(inner) if sign_in_ms is not None and None not in inner else None
    named = [r["median_ms"] for r in rows if r["stage"].strip().startswith(NAMED_STAGES)]
    return {
        "named_stages_ms": sum(named) if None not in named else None,
        "sign_in_rest_ms": rest,
        "signins": signins,
        "request_ms": request_ms,
        "hash_median_ms": statistics.median(hashes) * 1000,
        "stages": rows,
        "outside_sign_in_ms": request_ms - sign_in_ms if sign_in_ms is not None else None,
    }


# --- profiles ---------------------------------------------------------------------------------------
# Stages, looked up in a profile by (file, function); a function renamed since shows as n/a.
SIGNIN_STAGES = [
    ("Django request handling (all middleware)", "django/core/handlers/base.py", "get_response"),
    ("LoginApi.post", "accounts/api/views.py", "post"),
    ("sign_in", "accounts/services/signin.py", "sign_in"),
    ("authenticate (axes, backend, hash)", "django/contrib/auth/__init__.py", "authenticate"),
    ("  axes: cool-off (accounts.lockout.cooloff_time)", "accounts/lockout.py", "cooloff_time"),
    ("risk: indexes_for (blind indexes)", "accounts/risk/engine.py", "indexes_for"),
    ("risk: read_history", "accounts/risk/engine.py", "read_history"),
    ("risk: is_on_blocklist", "accounts/passwords.py", "is_on_blocklist"),
    ("risk: assess", "accounts/risk/engine.py", "assess"),
    ("remember_device", "accounts/services/signin.py", "remember_device"),
    ("build_event (security event)", "accounts/services/events.py", "build_event"),
    ("start_api_session (one WITH: session, tokens, event)", "accounts/services/sessions.py", "start_api_session"),
    ("_after_success (new-sign-in notice)", "accounts/services/signin.py", "_after_success"),
    ("  axes: user_logged_in (clean-up, reset)", "axes/handlers/database.py", "user_logged_in"),
    ("  django: update_last_login", "django/contrib/auth/models.py", "update_last_login"),
    ("    auditlog: log_update (pre_save)", "auditlog/receivers.py", "log_update"),
    ("SessionMiddleware.process_response", "django/contrib/sessions/middleware.py", "process_response"),
]
ME_STAGES = [
    ("WSGI handler", "django/core/handlers/wsgi.py", "__call__"),
    ("DRF dispatch", "rest_framework/views.py", "dispatch"),
    ("BearerTokenAuthentication.authenticate", "accounts/api/authentication.py", "authenticate"),
    ("  authenticate_access_token", "accounts/services/sessions.py", "authenticate_access_token"),
    ("MeApi.get", "accounts/api/views.py", "get"),
    ("  profile()", "accounts/api/views.py", "profile"),
    ("    has_second_factor (methods_for)", "accounts/models/users.py", "has_second_factor"),
    ("database connect", "django/db/backends/base/base.py", "connect"),
    ("database close (request_finished)", "django/db/__init__.py", "close_old_connections"),
]
HASH_FUNCTION = ("argon2/_password_hasher.py", "verify")


def _find(stats: dict[Any, Any], path_suffix: str, name: str) -> list[Any]:
    return [key for key in stats if key[2] == name and key[0].replace(os.sep, "/").endswith(path_suffix)]


def _ancestors(stats: dict[Any, Any], targets: list[Any]) -> set[Any]:
    """Every function from which one of ``targets`` was called, directly or not."""
    seen: set[Any] = set()
    todo = list(targets)
    while todo:
        func = todo.pop()
        for caller in stats.get(func, (0, 0, 0, 0, {}))[4]:
            if caller not in seen:
                seen.add(caller)
                todo.append(caller)
    return seen


def _ours(filename: str) -> str | None:
    path = filename.replace(os.sep, "/")
    base = str(BASE_DIR).replace(os.sep, "/") + "/"
    if not path.startswith(base):
        return None
    rel = path[len(base) :]
    return rel if rel.split("/", 1)[0] in OUR_PACKAGES else None


def run_profiled(fn: Callable[[], Any], n: int) -> tuple[dict[Any, Any], float]:
    profiler = cProfile.Profile()
    gc.collect()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(n):
        fn()
    profiler.disable()
    wall = time.perf_counter() - start
    return pstats.Stats(profiler).stats, wall  # type: ignore[attr-defined]


def analyse_profile(
    stats: dict[Any, Any], wall: float, n: int, *, stages: list[tuple[str, str, str]], top: int
) -> dict[str, Any]:
    """Milliseconds per operation: the stages, and our own functions by cumulative time.

    ``without_hash`` takes the Argon2 verify out of every entry that (directly or not) called it.
    """
    hash_keys = _find(stats, *HASH_FUNCTION)
    hash_ms = sum(stats[k][3] for k in hash_keys) / n * 1000
    above_hash = _ancestors(stats, hash_keys)

    def row(key: Any, label: str) -> dict[str, Any]:
        _cc, nc, tt, ct, _callers = stats[key]
        cum_ms = ct / n * 1000
        return {
            "entry": label,
            "calls": nc / n,
            "cum_ms": cum_ms,
            "without_hash_ms": cum_ms - hash_ms if key in above_hash else cum_ms,
            "own_ms": tt / n * 1000,
        }

    ours = [row(key, f"{rel}:{key[1]} {key[2]}") for key in stats if (rel := _ours(key[0])) is not None]
    ours.sort(key=lambda r: r["cum_ms"], reverse=True)
    found = []
    for label, suffix, name in stages:
        keys = _find(stats, suffix, name)
        if keys:
            found.append(row(max(keys, key=lambda k: stats[k][3]), label))
        else:
            # Not in the profile: not called during these sign-ins, or renamed since.
            found.append({"entry": label, "calls": None, "cum_ms": None, "without_hash_ms": None, "own_ms": None})
    return {"n": n, "wall_ms": wall / n * 1000, "hash_ms": hash_ms, "stages": found, "ours_top": ours[:top]}


# --- GET /me and the bare endpoint through the WSGI handler, in process ---------------------------
class WsgiDriver:
    """Calls the WSGI application as gunicorn's workers do, minus the HTTP server and the socket.

    Unlike the test Client, this fires ``request_finished`` as a server does, so database
    connections are closed or kept as in production (SQLite: closed after every request).
    """

    def __init__(self, token: str) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()
        self.token = token

    def get(self, path: str) -> float:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_USER_AGENT": USER_AGENT,
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if path == ME_PATH:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)

        start = time.perf_counter()
        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()  # type: ignore[attr-defined]  # request_finished, as a server sends it
        elapsed = time.perf_counter() - start
        if not status or not status[0].startswith("200"):
            raise AssertionError(f"GET {path}: {status} {body[:200]!r}")
        return elapsed


def measure_inprocess_me(token: str, *, requests: int, profile: bool, top: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    driver = WsgiDriver(token)
    for _ in range(50):
        driver.get(ME_PATH)
        driver.get(BARE_PATH)
    gc.collect()
    me, bare = [], []
    for i in range(requests):
        if i % 2:
            me.append(driver.get(ME_PATH))
            bare.append(driver.get(BARE_PATH))
        else:
            bare.append(driver.get(BARE_PATH))
            me.append(driver.get(ME_PATH))
    with CaptureQueriesContext(connection) as ctx:
        driver.get(ME_PATH)
    me_s, bare_s = summary(me), summary(bare)
    result = {
        "me": me_s,
        "bare": bare_s,
        "me_over_bare_time": _ratio(me_s["median_ms"], bare_s["median_ms"]),
        "me_queries": len(ctx.captured_queries),
        "me_query_kinds": dict(Counter(_statement_kind(q["sql"]) for q in ctx.captured_queries)),
        "profile": None,
    }
    if profile:
        stats, wall = run_profiled(lambda: driver.get(ME_PATH), requests)
        result["profile"] = analyse_profile(stats, wall, requests, stages=ME_STAGES, top=top)
    return result


# --- (2) throughput under gunicorn ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(port: int, method: str, path: str, body: bytes | None = None, token: str = "") -> tuple[int, bytes]:
    """One request to 127.0.0.1 (http.client: no proxy from the environment can redirect it)."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return int(response.status), response.read()
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these processes, from /proc (Linux); None when not available."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
    return total


class Gunicorn:
    """deploy/gunicorn.conf.py serving identity.wsgi with the benchmark settings, on 127.0.0.1."""

    def __init__(self, *, workers: int, max_requests: int, logdir: Path) -> None:
        self.port = free_port()
        self.workers = workers
        self.log_path = logdir / "gunicorn.log"
        env = {
            **os.environ,  # the throw-away keys and BENCH_SQLITE_PATH this process set, DATABASE_URL
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_ACCESS_LOG": "",  # off
            "GUNICORN_LOG_LEVEL": "warning",
            "GUNICORN_MAX_REQUESTS": str(max_requests),
        }
        self.command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "identity.wsgi"]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = _http(self.port, "GET", BARE_PATH)
                if status == 200 and len(self.worker_pids()) == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return _children(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to the arbiter: it stops its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _load(port: int, path: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "BENCH_AUTHORIZATION": f"Bearer {token}" if token else ""}
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks.loadgen",
        f"--port={port}",
        f"--path={path}",
        f"--seconds={args.seconds}",
        "--warmup=1",
        f"--concurrency={args.concurrency}",
        f"--processes={args.client_processes}",
    ]
    out = subprocess.run(
        command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=args.seconds + 120, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def measure_http(args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    from django.db import connections

    connections.close_all()  # the workers have the database to themselves
    server = Gunicorn(workers=args.workers, max_requests=args.max_requests, logdir=logdir)
    try:
        server.wait_ready()

        def sign_in() -> str:
            status, content = _http(server.port, "POST", LOGIN_PATH, login_body(ME_EMAIL).encode())
            if status != 200:
                raise RuntimeError(f"sign-in through gunicorn failed: HTTP {status} {content[:300]!r}")
            return str(json.loads(content)["access"])

        token, token_at = sign_in(), time.monotonic()
        status, content = _http(server.port, "GET", ME_PATH, token=token)
        if status != 200 or json.loads(content).get("email") != ME_EMAIL:
            raise RuntimeError(f"GET {ME_PATH} through gunicorn: HTTP {status} {content[:300]!r}")
        pids = server.worker_pids()
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "me": []}
        for r in range(args.rounds):
            order = ("bare", "me") if r % 2 == 0 else ("me", "bare")  # bare, me, me, bare, ...
            for name in order:
                if name == "me" and time.monotonic() - token_at > TOKEN_REFRESH_AFTER_S:
                    token, token_at = sign_in(), time.monotonic()
                cpu0 = _cpu_seconds(pids)
                path, bearer = (BARE_PATH, "") if name == "bare" else (ME_PATH, token)
                result = _load(server.port, path, bearer, args)
                cpu1 = _cpu_seconds(pids)
                stable = server.worker_pids() == pids
                result["server_cpu_s"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None and stable else None
                result["round"] = r + 1
                runs[name].append(result)
                print(
                    f"round {r + 1}/{args.rounds}: {name:4} {result['rps']:8.1f} req/s, "
                    f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms",
                    flush=True,
                )
        tail = server.log_tail()
    finally:
        server.stop()
    return {"runs": runs, "summary": {name: _combine(rs) for name, rs in runs.items()}, "gunicorn_log_tail": tail}


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in results)
    ok = sum(r["ok"] for r in results)
    cpu = [r.get("server_cpu_s") for r in results]
    server_cpu = sum(c for c in cpu if c is not None) if all(c is not None for c in cpu) else None
    requests = sum(r["requests"] for r in results)
    # The workers' CPU was read before and after each load generator run, warm-up included.
    all_ok = sum(r["all_ok"] for r in results)
    return {
        "rps": ok / seconds,
        "rps_per_round": [r["rps"] for r in results],
        # Percentiles of each round's, the median over rounds (the raw latencies stay in loadgen).
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "requests": requests,
        "not_ok": requests - ok + sum(r["errors"] for r in results),
        "server_cpu_ms_per_request": server_cpu / all_ok * 1000 if server_cpu is not None and all_ok else None,
        "client_cpu_ms_per_request": sum(r["client_cpu_s"] for r in results) / all_ok * 1000 if all_ok else None,
    }


# --- report -----------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def database_description() -> str:
    from tests.benchmarks.run import database_description as describe

    return describe()


def run(args: argparse.Namespace, tmpdir: Path) -> dict[str, Any]:
    import django
    from django.conf import settings

    from accounts.risk.engine import HISTORY_DEPTH
    from accounts.services.sessions import token_cache_enabled

    started = time.perf_counter()
    load_start = _loadavg()
    history = HISTORY_DEPTH if args.history is None else args.history
    migrate_s = migrate()
    print(f"migrated in {migrate_s:.1f} s", flush=True)
    user = make_listener(SIGNIN_EMAIL)
    known_device_and_history(user, history)
    make_listener(ME_EMAIL)
    driver = SignInDriver(SIGNIN_EMAIL)

    t0 = time.perf_counter()
    signin = measure_signin(driver, warmup=args.warmup, signins=args.signins)
    print(
        f"sign-in: {args.signins} sign-ins and hashes in {time.perf_counter() - t0:.1f} s; overhead "
        f"{signin['overhead_median_ms']:.2f} ms at the median",
        flush=True,
    )
    queries = measure_queries(driver, signins=args.queries)
    stages = measure_stages(driver, signins=args.stages)
    prof = None
    if args.profile:
        t0 = time.perf_counter()
        stats, wall = run_profiled(driver.sign_in, args.profile)
        prof = analyse_profile(stats, wall, args.profile, stages=SIGNIN_STAGES, top=args.top)
        print(f"profiled {args.profile} sign-ins in {time.perf_counter() - t0:.1f} s", flush=True)

    from django.test import Client

    response = Client().post(LOGIN_PATH, login_body(ME_EMAIL), content_type="application/json", REMOTE_ADDR=CLIENT_IP)
    me_token = str(json.loads(response.content)["access"])
    inprocess = measure_inprocess_me(me_token, requests=args.requests, profile=bool(args.profile), top=args.top)

    throughput = None
    if not args.no_http:
        throughput = measure_http(args, tmpdir)

    overhead = signin["overhead_median_ms"]
    targets: dict[str, Any] = {
        "overhead_median_ms": overhead,
        "overhead_pass": overhead <= OVERHEAD_TARGET_MS,
    }
    if throughput is not None:
        me, bare = throughput["summary"]["me"], throughput["summary"]["bare"]
        ratio = _ratio(me["rps"], bare["rps"])
        targets.update({"me_over_bare": ratio, "throughput_pass": ratio >= THROUGHPUT_TARGET})
        if me["server_cpu_ms_per_request"] and bare["server_cpu_ms_per_request"]:
            # The same comparison without the client: requests per worker-CPU-second, /me over bare.
            targets["me_over_bare_cpu"] = bare["server_cpu_ms_per_request"] / me["server_cpu_ms_per_request"]
    return {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "database": database_description(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "git": git_revision(),
            "signins": args.signins,
            "warmup": args.warmup,
            "profile": args.profile,
            "queries": args.queries,
            "stages": args.stages,
            "history": history,
            "requests_inprocess": args.requests,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "client_processes": args.client_processes,
            "workers": args.workers,
            "max_requests": args.max_requests,
            "login_throttle": settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"],
            # With a shared cache (REDIS_URL), bearer tokens seen before are found there.
            "cache_backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
            "access_token_cache": token_cache_enabled(),
            "password_hasher": settings.PASSWORD_HASHERS[0],
            "migrate_s": migrate_s,
            "elapsed_s": time.perf_counter() - started,
            # Other work on the machine shows here: a load average above the core count means noise.
            "loadavg_start": load_start,
            "loadavg_end": _loadavg(),
        },
        "signin": signin,
        "queries": queries,
        "stages": stages,
        "profile": prof,
        "inprocess": inprocess,
        "http": throughput,
        "targets": targets,
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _print_profile(prof: dict[str, Any], what: str) -> None:
    print(f"  {'ms per ' + what + ', cumulative':56}{'calls':>7}{'cum':>9}{'w/o hash':>10}")
    for r in prof["stages"]:
        calls = "" if r["calls"] is None else f"{r['calls']:.0f}"
        print(f"  {r['entry'][:56]:56}{calls:>7}{_ms(r['cum_ms']):>9}{_ms(r['without_hash_ms']):>10}")
    print(f"  top {len(prof['ours_top'])} in {', '.join(OUR_PACKAGES)}:")
    for r in prof["ours_top"]:
        print(f"  {r['entry'][:56]:56}{r['calls']:>7.0f}{r['cum_ms']:>9.2f}{r['without_hash_ms']:>10.2f}")


def print_report(result: dict[str, Any]) -> None:
    meta, si, q, prof, inp, tp, tgt = (
        result[k] for k in ("meta", "signin", "queries", "profile", "inprocess", "http", "targets")
    )
    git = meta["git"]
    print()
    print(
        f"Sign-in benchmark, {meta['date']}: {meta['database']}; Python {meta['python']}, Django {meta['django']}; "
        f"{meta['cpus']} CPU cores; commit {git['commit'] or '?'}"
        + (f" (+{git['modified_files']} modified files)" if git["modified_files"] else "")
    )
    print(
        f"{meta['signins']} sign-ins after {meta['warmup']} warm-up; the account has {meta['history']} earlier "
        f"sign-ins and signs in from a known device; login throttle raised to {meta['login_throttle']}"
    )
    print(
        f"cache: {meta['cache_backend']}; bearer-token cache "
        + ("on" if meta["access_token_cache"] else "off (the cache is not shared between processes)")
    )
    print()
    print(f"{'':36}{'median':>12}{'p90':>12}{'min':>12}{'max':>12}")
    for label, st in (
        ("full sign-in (POST /auth/login)", si["signin"]),
        ("its own Argon2id verify", si["own_hash"]),
        ("Argon2id verify alone, separately", si["hash"]),
        ("overhead: sign-in - its own hash", si["own_overhead"]),
        ("sign-in - the separate hash", si["paired_overhead"]),
    ):
        print(f"{label:36}" + "".join(f"{st[k]:>9.2f} ms" for k in ("median_ms", "p90_ms", "min_ms", "max_ms")))
    print(
        f"  (the target's figure is the overhead; median(sign-in) - median(separate hash) = "
        f"{si['separate_overhead_median_ms']:.2f} ms, the figure earlier runs reported)"
    )
    print()
    print(
        f"SQL per sign-in: {q['per_signin']:.0f} statements, {q['data_statements']} of them SELECT/INSERT/UPDATE/"
        f"DELETE; {q['sql_ms_per_signin']:.2f} ms in statements, {q['commits_per_signin']:.0f} COMMIT "
        f"{q['commit_ms_per_signin']:.2f} ms"
    )
    for kind, n in q["kinds"].items():
        print(f"  {n:3d} x {kind}")
    st = result["stages"]
    print()
    print(
        f"Stages, wall clock with timing wrappers (no profiler), median of {st['signins']} sign-ins of "
        f"{st['request_ms']:.2f} ms:"
    )
    inside = [r for i, r in enumerate(st["stages"]) if i == 0 or r["stage"].startswith("  ")]
    after = [r for r in st["stages"] if r not in inside]
    for row in inside:
        print(f"  {row['stage']:56}{_ms(row['median_ms']):>9} ms")
        if "Argon2" in row["stage"] and row["median_ms"] is not None:
            print(
                f"  {'    without the hash (its median in this pass)':56}"
                f"{row['median_ms'] - st['hash_median_ms']:>9.2f} ms"
            )
    print(f"  {'  sign_in itself (the rest, with its COMMIT)':56}{_ms(st['sign_in_rest_ms']):>9} ms")
    for row in after:
        print(f"  {row['stage']:56}{_ms(row['median_ms']):>9} ms")
    print(f"  {'outside sign_in: middleware, DRF, view, test Client':56}{_ms(st['outside_sign_in_ms']):>9} ms")
    print(f"  {'named stages summed (risk: to _after_success)':56}{_ms(st['named_stages_ms']):>9} ms")
    if prof:
        print()
        print(
            f"cProfile of {prof['n']} sign-ins: {prof['wall_ms']:.2f} ms a sign-in under the profiler, "
            f"{prof['hash_ms']:.2f} ms of it in the Argon2 verify"
        )
        _print_profile(prof, "sign-in")
    print()
    print(
        f"In process, WSGI handler without a server, median of {meta['requests_inprocess']}: GET /api/v1/me "
        f"{inp['me']['median_ms']:.2f} ms, GET /bench/bare {inp['bare']['median_ms']:.2f} ms "
        f"({inp['me_over_bare_time']:.1f}x); /me runs {inp['me_queries']} SQL statements: "
        + ", ".join(f"{n} x {k}" for k, n in inp["me_query_kinds"].items())
    )
    if inp["profile"]:
        print(f"cProfile of {inp['profile']['n']} GET /api/v1/me: {inp['profile']['wall_ms']:.2f} ms a request")
        _print_profile(inp["profile"], "request")
    if tp:
        print()
        print(
            f"gunicorn, {meta['workers']} workers; {meta['concurrency']} client threads in "
            f"{meta['client_processes']} processes; "
            f"{meta['rounds']} x {meta['seconds']:g} s per endpoint:"
        )
        print(f"  {'':18}{'req/s':>9}{'p50':>11}{'p99':>11}{'CPU/req: workers':>19}{'client':>10}  req/s per round")
        for name, label in (("bare", "GET /bench/bare"), ("me", "GET /api/v1/me")):
            st = tp["summary"][name]
            rounds = ", ".join(f"{v:.0f}" for v in st["rps_per_round"])
            print(
                f"  {label:18}{st['rps']:>9.1f}{st['p50_ms']:>8.2f} ms{st['p99_ms']:>8.2f} ms"
                f"{_ms(st['server_cpu_ms_per_request']):>16} ms{_ms(st['client_cpu_ms_per_request']):>7} ms  {rounds}"
                + (f"  ({st['not_ok']} not 2xx or failed)" if st["not_ok"] else "")
            )
    print()
    print("Targets:")
    print(
        f"  [{_verdict(tgt['overhead_pass'])}] sign-in overhead at the median = {tgt['overhead_median_ms']:.2f} ms "
        f"(target <= {OVERHEAD_TARGET_MS:.0f} ms)"
    )
    if "me_over_bare" in tgt:
        print(
            f"  [{_verdict(tgt['throughput_pass'])}] GET /api/v1/me at {tgt['me_over_bare']:.2f} of the bare "
            f"endpoint's requests per second (target >= {THROUGHPUT_TARGET:.2f})"
        )
        if "me_over_bare_cpu" in tgt:
            print(
                f"         per worker CPU second instead (the client left out): {tgt['me_over_bare_cpu']:.2f} "
                f"(bare endpoint's worker CPU per request / /me's)"
            )
    load = meta["loadavg_start"], meta["loadavg_end"]
    print(f"\n{meta['elapsed_s']:.0f} s in all; load average (1/5/15 min) {load[0]} at the start, {load[1]} at the end")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from tests.benchmarks.run import run_in_scratch

    return run_in_scratch(
        "identity-signin-bench-", setup_django, lambda tmpdir: run(args, tmpdir), print_report, args.json
    )


if __name__ == "__main__":
    sys.exit(main())
