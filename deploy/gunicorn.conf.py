"""Gunicorn configuration: ``gunicorn -c deploy/gunicorn.conf.py identity.wsgi``.

DESIGN.md requirement 2, encryption in transit: when both ``TLS_CERT_FILE`` and ``TLS_KEY_FILE``
are set, gunicorn serves HTTPS and accepts TLS 1.3 only (CONTRACT.md, Environment). Behind nginx
leave them unset, bind to a private address, and let nginx terminate TLS (deploy/README.md).

Access log lines are JSON objects with method, path, status, size, duration and request id: never
the query string (it can carry tokens), the client address, the user agent or the referrer
(requirement 1: no personal data in logs).

Every setting is read from the environment so that one file serves every environment:

| variable | setting | default |
| --- | --- | --- |
| ``GUNICORN_BIND`` | bind (comma-separated) | ``127.0.0.1:8000`` |
| ``WEB_CONCURRENCY`` | workers | 2 x CPUs + 1, at most 12 |
| ``GUNICORN_THREADS`` | threads per worker | 1 |
| ``GUNICORN_TIMEOUT`` | worker timeout, seconds | 30 |
| ``GUNICORN_GRACEFUL_TIMEOUT`` | graceful shutdown, seconds | 30 |
| ``GUNICORN_KEEPALIVE`` | keep-alive, seconds | 5 |
| ``GUNICORN_MAX_REQUESTS`` | recycle a worker after this many requests (0: never) | 1000 |
| ``GUNICORN_ACCESS_LOG`` | access log target (``-``: stdout, empty: off) | ``-`` |
| ``GUNICORN_LOG_LEVEL`` | error log level | ``info`` |
| ``FORWARDED_ALLOW_IPS`` | proxies trusted for ``X-Forwarded-*`` | ``127.0.0.1`` |
| ``TLS_CERT_FILE``, ``TLS_KEY_FILE`` | HTTPS, TLS 1.3 only, when both are set | unset |
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

# At most this many workers by default: each holds a database connection and Argon2 hashing
# memory, so more CPUs do not mean more useful workers on one host. WEB_CONCURRENCY overrides.
MAX_DEFAULT_WORKERS = 12


def _fail(message: str) -> SystemExit:
    """Stop gunicorn at start with a message for the operator (exit status 1)."""
    return SystemExit(f"deploy/gunicorn.conf.py: {message}")


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _fail(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise _fail(f"{name} must be at least {minimum}, not {value}")
    return value


def _cpu_count() -> int:
    # The CPUs this process may run on (containers and taskset), not every CPU of the host.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """The usual 2 x CPUs + 1, capped at MAX_DEFAULT_WORKERS."""
    return min(2 * _cpu_count() + 1, MAX_DEFAULT_WORKERS)


# --- Server socket --------------------------------------------------------------------------------
bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "").split(",") if address.strip()] or [
    "127.0.0.1:8000"
]
backlog = 2048

# --- Workers --------------------------------------------------------------------------------------
workers = _env_int("WEB_CONCURRENCY", default_workers(), minimum=1)
threads = _env_int("GUNICORN_THREADS", 1, minimum=1)
timeout = _env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
# Recycling workers bounds the damage of a slow leak; the jitter keeps them from restarting together.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
max_requests_jitter = max_requests // 10
# Heartbeat files on a RAM disk: a slow or full disk must not make the arbiter kill healthy workers.
if Path("/dev/shm").is_dir():  # noqa: S108 - a directory for heartbeats, not a temporary file
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# --- Request limits (gunicorn's defaults, stated so that a review sees them) ----------------------
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# --- Proxies --------------------------------------------------------------------------------------
# Only these addresses may set X-Forwarded-Proto / X-Forwarded-For and be believed.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "").strip() or "127.0.0.1"

# --- Logging --------------------------------------------------------------------------------------
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "").strip() or "info"
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-").strip() or None


class JsonAccessLogger(Logger):
    """Writes each access log line as one JSON object, without query string or client details.

    DESIGN.md requirement 1: no personal data in logs. The path goes through the same redaction as
    the application's logs (identity.logging), in case a path ever carries an e-mail or a phone.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        # access_log_enabled is gunicorn 27's; older versions log whenever accesslog is set.
        if not getattr(self, "access_log_enabled", bool(self.cfg.accesslog)):
            return
        try:
            atoms = self.atoms(resp, req, environ, request_time)
            path = str(environ.get("PATH_INFO") or "-")
            try:
                # Imported late: identity is loaded by the worker with the application.
                from identity.logging import redact

                path = redact(path)
            except ImportError:
                pass
            line = {
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "level": "INFO",
                "logger": "gunicorn.access",
                "method": atoms.get("m"),
                "path": path,
                "protocol": atoms.get("H"),
                "status": _as_int(atoms.get("s")),
                "bytes": atoms.get("B"),
                "duration_ms": atoms.get("M"),
                "request_id": atoms.get("{x-request-id}o", "-"),
                "pid": os.getpid(),
            }
            self.access_log.info(json.dumps(line, ensure_ascii=True))
        except Exception:
            self.exception("could not write the access log line")


def _as_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


logger_class = JsonAccessLogger

# --- TLS (DESIGN.md requirement 2: TLS 1.3 in transit) --------------------------------------------
_cert_file = os.environ.get("TLS_CERT_FILE", "").strip()
_key_file = os.environ.get("TLS_KEY_FILE", "").strip()
if bool(_cert_file) != bool(_key_file):
    _missing = "TLS_KEY_FILE" if _cert_file else "TLS_CERT_FILE"
    _present = "TLS_CERT_FILE" if _cert_file else "TLS_KEY_FILE"
    raise _fail(
        f"{_present} is set but {_missing} is not. Set both to serve HTTPS (TLS 1.3 only), "
        "or neither to serve plain HTTP behind a TLS-terminating proxy."
    )
if _cert_file:
    for _name, _value in (("TLS_CERT_FILE", _cert_file), ("TLS_KEY_FILE", _key_file)):
        if not os.access(_value, os.R_OK):
            raise _fail(f"{_name} points to {_value!r}, which does not exist or cannot be read")
    certfile = _cert_file
    keyfile = _key_file


def ssl_context(config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """Gunicorn's SSL hook: the default context (certificate, key, ciphers) limited to TLS 1.3.

    DESIGN.md requirement 2: the shipped server configuration refuses TLS 1.2 and older.
    """
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context
