"""django-axes' database handler, with its lockout check as one fixed statement (AXES_HANDLER)."""

from __future__ import annotations

import datetime
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_parameters, get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db import connections, router

from accounts.risk.engine import PROBE_ATTRIBUTE
from accounts.services.sessions import SIGNIN_USER_ATTRIBUTE, lockout_and_user
from identity.db import fixed_cursor


class DatabaseHandler(AxesDatabaseHandler):  # type: ignore[misc]
    """django-axes' database handler, with its lockout check as one fixed statement.

    axes asks ``get_failures`` before every password check: a ``Sum`` over the attempts of each
    lockout parameter set since the cool-off threshold. The ORM compiles that aggregate anew each
    time (about 0.5 ms of Python per sign-in, docs/benchmarks.md "Sign-in"); here the same SQL is built
    once per parameter set and prepared on PostgreSQL (``identity.db.fixed_cursor``). The rows
    counted, and so every lockout decision, are those of axes' own query: the parameter sets come
    from ``get_client_parameters`` and the threshold from ``get_cool_off_threshold``, as in axes.
    """

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        if getattr(settings, "AXES_COOLOFF_TIME", None) is None or getattr(
            settings, "AXES_USE_ATTEMPT_EXPIRATION", False
        ):
            return int(super().get_failures(request, credentials))
        username = get_client_username(request, credentials)
        parameter_sets = get_client_parameters(
            username, request.axes_ip_address, request.axes_user_agent, request, credentials
        )
        if any(value is None for parameters in parameter_sets for value in parameters.values()):
            return int(super().get_failures(request, credentials))  # axes matches NULL there: its own query
        threshold = get_cool_off_threshold(request)
        probe = getattr(request, PROBE_ATTRIBUTE, None)
        if probe is not None and len(parameter_sets) == 1 and parameter_sets[0].get("username") == probe.idx.account:
            # A sign-in (accounts.services.signin): the account's row and the risk engine's counts
            # come in this statement too, for the backend (one round trip instead of two).
            total, user = lockout_and_user(_failures_part(parameter_sets[0], threshold), probe.idx.account, probe)
            request.__dict__[SIGNIN_USER_ATTRIBUTE] = (probe.idx.account, user)
            return int(total or 0)
        return max((_failures_since(parameters, threshold) for parameters in parameter_sets), default=0)


_FAILURES_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def _failures_since(parameters: dict[str, Any], threshold: datetime.datetime) -> int:
    sql, params = _failures_part(parameters, threshold)
    with fixed_cursor(router.db_for_read(AccessAttempt)) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0


def _failures_part(parameters: dict[str, Any], threshold: datetime.datetime) -> tuple[str, list[Any]]:
    """axes' sum of failures for one parameter set since the threshold: the SELECT and its values."""
    alias = router.db_for_read(AccessAttempt)
    connection = connections[alias]
    names = tuple(parameters)
    sql = _FAILURES_SQL.get((alias, names))
    if sql is None:
        q = connection.ops.quote_name
        fields = [AccessAttempt._meta.get_field(name) for name in (*names, "attempt_time")]
        conditions = " AND ".join(f"{q(f.column)} = %s" for f in fields[:-1])  # type: ignore[union-attr]
        total = q(AccessAttempt._meta.get_field("failures_since_start").column)  # type: ignore[union-attr]
        # Only quoted names from the model's metadata go into the text; every value is a parameter.
        sql = _FAILURES_SQL[(alias, names)] = (
            f"SELECT SUM({total}) FROM {q(AccessAttempt._meta.db_table)} "  # noqa: S608
            f"WHERE {conditions} AND {q(fields[-1].column)} >= %s"  # type: ignore[union-attr]
        )
    params = [
        AccessAttempt._meta.get_field(name).get_db_prep_value(value, connection)  # type: ignore[union-attr]
        for name, value in parameters.items()
    ]
    params.append(connection.ops.adapt_datetimefield_value(threshold))
    return sql, params
