"""Sessions and tokens: issue, rotate (with reuse detection, RFC 9700 §4.14), revoke.

Access tokens live ACCESS_TOKEN_MINUTES (at most 15). Refresh tokens rotate on every use; a used
refresh token presented again revokes its whole session and raises an alert. Sessions have an
absolute lifetime (SESSION_ABSOLUTE_DAYS). Only SHA-256 digests of tokens are stored.
"""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import (
    AccessToken,
    AuthSession,
    BackupCode,
    BackupCodeFactor,
    KnownDevice,
    RefreshToken,
    SecurityEvent,
    TotpFactor,
    User,
)
from accounts.risk.engine import FailureProbe, failures_columns, failures_from_row, failures_params, keep_probed
from accounts.risk.summary import SignInSummary
from accounts.services import statements
from accounts.services.events import raise_alert, record_event
from accounts.services.secrets import new_token, token_digest
from compliance import audit
from identity.crypto.blind import email_index
from identity.db import fixed_cursor


class TokenError(Exception):
    code = "invalid_token"


class TokenReused(TokenError):
    code = "token_reused"


@dataclass(frozen=True)
class IssuedTokens:
    session: AuthSession
    access: str
    refresh: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": str(self.session.pk),
        }


def _access_ttl() -> datetime.timedelta:
    return datetime.timedelta(minutes=min(settings.ACCESS_TOKEN_MINUTES, 15))


def issue_tokens(session: AuthSession, now: datetime.datetime) -> IssuedTokens:
    issued, parts = _token_rows(session, now)
    statements.together(*parts, using=router.db_for_write(AccessToken))
    return issued


def _token_rows(session: AuthSession, now: datetime.datetime) -> tuple[IssuedTokens, list[tuple[str, list[Any]]]]:
    """A new access and refresh token for ``session``, and the INSERTs that store their hashes
    (fixed statements, accounts.services.statements: the same rows as objects.create())."""
    access, refresh = new_token("ima"), new_token("imr")
    ttl = _access_ttl()
    refresh_expiry = min(now + datetime.timedelta(days=settings.REFRESH_TOKEN_IDLE_DAYS), session.expires_at)
    parts = [
        statements.insert_part(AccessToken(token_hash=token_digest(access), session=session, expires_at=now + ttl)),
        statements.insert_part(
            RefreshToken(token_hash=token_digest(refresh), session=session, expires_at=refresh_expiry)
        ),
    ]
    return IssuedTokens(session, access, refresh, int(ttl.total_seconds())), parts


@transaction.atomic(savepoint=False)  # part of the caller's sign-in: no savepoint of its own
def start_api_session(
    *,
    user: User,
    device: KnownDevice | None,
    context: dict[str, Any],
    mfa: bool,
    signin_summary: SignInSummary | None = None,
    event: SecurityEvent | None = None,
    also: Sequence[tuple[str, list[Any]]] = (),
) -> IssuedTokens:
    """A new API session with its first tokens; ``last_login`` (and the sign-in summary, when the
    caller updated it: accounts.risk.summary) written in one UPDATE of the user row.

    ``event`` (a new security event, ``build_event``) and ``also`` (more statements of the caller's,
    ``statements.*_part``) are written in the same round trip."""
    now = timezone.now()
    session = AuthSession(
        user=user,
        data_key_id=user.data_key_id,
        kind=AuthSession.Kind.API,
        device=device,
        expires_at=now + datetime.timedelta(days=settings.SESSION_ABSOLUTE_DAYS),
        mfa_at=now if mfa else None,
        context=context,
    )
    changes: dict[str, Any] = {"last_login": now}
    if signin_summary is not None:
        changes["signin_summary"] = user.seal_signin_summary(signin_summary.to_stored())
    issued, token_parts = _token_rows(session, now)
    # One round trip on PostgreSQL: the session (its context encrypted by its field, as save()
    # would), the user row (QuerySet.update() semantics: no save(), so no auditlog entry; last_login
    # and the summary are not tracked: accounts.apps), both tokens, and the caller's statements, the
    # event last (its id is read back).
    statements.together(
        statements.insert_part(session),
        statements.update_part(User, where={"id": user.pk}, values=changes),
        *token_parts,
        *also,
        *([statements.insert_returning_part(event)] if event is not None else []),
        using=router.db_for_write(AuthSession),
        returning=event,
    )
    return issued


def authenticate_access_token(token: str) -> tuple[User, AuthSession] | None:
    """The user and session behind a bearer token, or None when unknown, expired or revoked.

    Every authenticated API request comes here. With a shared cache (Redis), a token seen before
    is found there by its digest (ids and expiry times only, never personal data), and only the
    user row is read; revoking a session marks its tokens there at once (``_revoke``), so a revoked
    token is refused at its next request, as before. Otherwise one statement, built once, reads the
    token, its session, the user and whether the user has a second factor.
    """
    now = timezone.now()
    digest = token_digest(token)
    cached = token_cache_enabled()
    if cached:
        entry = cache.get(_access_key(digest))
        if entry == REVOKED:
            return None
        if entry is not None:
            return _from_entry(entry, now)
    found = _lookups.get().token(digest, now)
    if found is None:
        return None
    user, session, token_expires_at = found
    if session.revoked_at is not None or session.expires_at <= now or not user.is_active:
        return None
    _touch(session.pk, session.last_used_at, now)
    if cached:
        entry = (str(user.pk), str(session.pk), session.expires_at.timestamp(), user.has_second_factor)
        timeout = int((token_expires_at - now).total_seconds())
        if timeout > 0:
            # add, not set: a revocation that marked this token since we read it must win.
            cache.add(_access_key(digest), entry, timeout=timeout)
    return user, session


# -- the shared token cache ------------------------------------------------------------------------

REVOKED = "revoked"
_TOUCH_SECONDS = 60


def token_cache_enabled() -> bool:
    """On with a cache shared by every process (Redis); ACCESS_TOKEN_CACHE = True/False forces it.

    A per-process cache (locmem) could not hear of a revocation made in another worker."""
    forced = getattr(settings, "ACCESS_TOKEN_CACHE", None)
    if forced is not None:
        return bool(forced)
    backend = str(settings.CACHES["default"]["BACKEND"])
    return not backend.endswith(("LocMemCache", "DummyCache"))


def _access_key(digest: str) -> str:
    return f"accounts:access-token:{digest}"


def _from_entry(entry: tuple[str, str, float, bool], now: datetime.datetime) -> tuple[User, AuthSession] | None:
    user_id, session_id, session_expires_at, has_second_factor = entry
    if session_expires_at <= now.timestamp():
        return None
    user = _lookups.get().user(user_id)
    if user is None or not user.is_active:
        return None
    user.__dict__["_has_second_factor"] = has_second_factor
    # Read only by the views that need it (step-up, sessions list), when they do.
    session = SimpleLazyObject(functools.partial(AuthSession.objects.select_related("user").get, pk=session_id))
    _touch(uuid.UUID(session_id), None, now)
    return user, session  # type: ignore[return-value]


_touched: dict[uuid.UUID, float] = {}


def _touch(session_id: uuid.UUID, last_used_at: datetime.datetime | None, now: datetime.datetime) -> None:
    """``last_used_at`` to the minute: at most one UPDATE a minute per session and process."""
    stamp = now.timestamp()
    if last_used_at is not None:
        seen = last_used_at.timestamp()
        _touched[session_id] = max(seen, _touched.get(session_id, 0.0))
    if stamp - _touched.get(session_id, 0.0) <= _TOUCH_SECONDS:
        return
    AuthSession.objects.filter(pk=session_id, last_used_at__lt=now).update(last_used_at=now)
    _touched[session_id] = stamp
    if len(_touched) > 10_000:
        _touched.clear()


def _mark_revoked(digests: list[str]) -> None:
    if digests and token_cache_enabled():
        cache.set_many({_access_key(d): REVOKED for d in digests}, timeout=int(_access_ttl().total_seconds()) + 60)


def forget_cached_tokens(*, user: User) -> None:
    """Drop the cached entries of a user's live tokens (their second-factor flag changed)."""
    if not token_cache_enabled():
        return
    digests = AccessToken.objects.filter(session__user=user, expires_at__gt=timezone.now()).values_list(
        "token_hash", flat=True
    )
    cache.delete_many([_access_key(d) for d in digests])


# -- the statements --------------------------------------------------------------------------------


class Lookups:
    """The two reads of a bearer-token request, as SQL built once per database, without the ORM's
    query compilation (docs/benchmarks.md, "Sign-in and GET /api/v1/me"):

    - ``token``: the token's expiry, its session, the user, and whether the user has a second
      factor (what ``User.has_second_factor`` would ask ``methods_for`` with three queries);
    - ``user``: the user row alone, by id (when the shared cache knew the token);
    - ``user_by_email_index``: the whole user row by its e-mail blind index, ``signin_summary``
      included (the sign-in backend, ``accounts.backends``).

    Column converters (the database's and the fields', decryption included) are prepared once too.
    Outside sign-in the user's ``signin_summary`` stays deferred: only sign-in reads it.
    """

    def __init__(self, alias: str) -> None:
        connection = connections[alias]
        self.alias = alias
        q = connection.ops.quote_name

        def col(model: type[Model], name: str) -> str:
            return q(str(model._meta.get_field(name).column))  # type: ignore[union-attr]

        self.session_fields = list(AuthSession._meta.concrete_fields)
        self.user_fields = [f for f in User._meta.concrete_fields if f.name != "signin_summary"]
        expiry = AccessToken._meta.get_field("expires_at")
        self.token_converters = [
            self._converters(expiry, "t", connection),
            *(self._converters(f, "s", connection) for f in self.session_fields),
            *(self._converters(f, "u", connection) for f in self.user_fields),
        ]
        self.user_converters = [self._converters(f, "u", connection) for f in self.user_fields]
        user_columns = ", ".join(f"u.{q(str(f.column))}" for f in self.user_fields)
        session_columns = ", ".join(f"s.{q(str(f.column))}" for f in self.session_fields)
        user_pk = f"u.{col(User, 'id')}"
        passkeys, totp, codes, sets = WebAuthnCredential, TotpFactor, BackupCode, BackupCodeFactor
        # Only quoted names from the models' metadata go into the text; every value is a parameter.
        self.token_sql = (
            f"SELECT t.{col(AccessToken, 'expires_at')}, {session_columns}, {user_columns}, "  # noqa: S608
            f"EXISTS (SELECT 1 FROM {q(passkeys._meta.db_table)} p WHERE p.{col(passkeys, 'user')} = {user_pk} "
            f"AND p.{col(passkeys, 'confirmed')} = %s), "
            f"EXISTS (SELECT 1 FROM {q(totp._meta.db_table)} f WHERE f.{col(totp, 'user')} = {user_pk} "
            f"AND f.{col(totp, 'confirmed')} = %s), "
            f"EXISTS (SELECT 1 FROM {q(codes._meta.db_table)} c INNER JOIN {q(sets._meta.db_table)} b "
            f"ON c.{col(codes, 'factor')} = b.{col(sets, 'id')} WHERE b.{col(sets, 'user')} = {user_pk} "
            f"AND b.{col(sets, 'confirmed')} = %s AND c.{col(codes, 'used_at')} IS NULL) "
            f"FROM {q(AccessToken._meta.db_table)} t "
            f"INNER JOIN {q(AuthSession._meta.db_table)} s "
            f"ON t.{col(AccessToken, 'session')} = s.{col(AuthSession, 'id')} "
            f"INNER JOIN {q(User._meta.db_table)} u ON s.{col(AuthSession, 'user')} = {user_pk} "
            f"WHERE t.{col(AccessToken, 'token_hash')} = %s AND t.{col(AccessToken, 'expires_at')} > %s"
        )
        self.user_sql = f"SELECT {user_columns} FROM {q(User._meta.db_table)} u WHERE {user_pk} = %s"  # noqa: S608
        self.user_pk_field = User._meta.get_field("id")
        self.signin_fields = list(User._meta.concrete_fields)
        self.signin_attnames = [f.attname for f in self.signin_fields]
        self.signin_pk_position = next(i for i, f in enumerate(self.signin_fields) if f.primary_key)
        self.signin_converters = [self._converters(f, "u", connection) for f in self.signin_fields]
        signin_columns = ", ".join(f"u.{q(str(f.column))}" for f in self.signin_fields)
        self.signin_sql = (
            f"SELECT {signin_columns} FROM {q(User._meta.db_table)} u "  # noqa: S608
            f"WHERE u.{col(User, 'email_index')} = %s"
        )
        # With the risk engine's failure counts and known device of the attempt (FailureProbe).
        self.signin_probe_sql = (
            f"SELECT {signin_columns}, {failures_columns(connection, user_id=user_pk)} "  # noqa: S608
            f"FROM {q(User._meta.db_table)} u WHERE u.{col(User, 'email_index')} = %s"
        )
        # And, first, a scalar of the caller's (django-axes' failure count: accounts.axes_handler),
        # with one row whether or not an account holds the address.
        self.signin_scalar_sql = (
            "SELECT ({scalar}), "  # noqa: S608
            f"{signin_columns}, {failures_columns(connection, user_id=user_pk)} "
            f"FROM (SELECT 1 AS one) AS one LEFT JOIN {q(User._meta.db_table)} u "
            f"ON u.{col(User, 'email_index')} = %s"
        )
        self._scalar_sql: dict[str, str] = {}

    @staticmethod
    def _converters(field: Field[Any, Any], alias: str, connection: BaseDatabaseWrapper) -> tuple[list[Any], Any]:
        expression = field.get_col(alias)
        return [*connection.ops.get_db_converters(expression), *field.get_db_converters(connection)], expression

    def _convert(self, row: Sequence[Any], converters: list[tuple[list[Any], Any]]) -> list[Any]:
        connection = connections[self.alias]
        values = []
        for value, (functions, expression) in zip(row, converters, strict=False):
            for function in functions:
                value = function(value, expression, connection)
            values.append(value)
        return values

    def _fetch(self, sql: str, params: list[Any]) -> Sequence[Any] | None:
        with fixed_cursor(self.alias) as cursor:
            cursor.execute(sql, params)
            row: Sequence[Any] | None = cursor.fetchone()
            return row

    def token(self, digest: str, now: datetime.datetime) -> tuple[User, AuthSession, datetime.datetime] | None:
        moment = connections[self.alias].ops.adapt_datetimefield_value(now)
        row = self._fetch(self.token_sql, [True, True, True, digest, moment])
        if row is None:
            return None
        values = self._convert(row, self.token_converters)
        n = len(self.session_fields) + 1
        session = AuthSession.from_db(self.alias, [f.attname for f in self.session_fields], values[1:n])
        user = User.from_db(self.alias, [f.attname for f in self.user_fields], values[n:])
        user.__dict__["_has_second_factor"] = any(bool(flag) for flag in row[len(self.token_converters) :])
        AuthSession.user.field.set_cached_value(session, user)
        return user, session, values[0]

    def user(self, user_id: str) -> User | None:
        connection = connections[self.alias]
        row = self._fetch(self.user_sql, [self.user_pk_field.get_db_prep_value(uuid.UUID(user_id), connection)])
        if row is None:
            return None
        return User.from_db(self.alias, [f.attname for f in self.user_fields], self._convert(row, self.user_converters))

    def user_by_email_index(self, index: str, probe: FailureProbe | None = None) -> User | None:
        """The user with this e-mail blind index (unique), every column read and opened; with
        ``probe``, the attempt's failures and known device too, in the same statement."""
        if probe is None:
            row = self._fetch(self.signin_sql, [index])
        else:
            connection = connections[self.alias]
            row = self._fetch(self.signin_probe_sql, [*failures_params(connection, probe.idx, probe.since), index])
        return None if row is None else self._signin_user(row, probe)

    def scalar_and_user(
        self, scalar: tuple[str, list[Any]], index: str, probe: FailureProbe
    ) -> tuple[Any, User | None]:
        """``scalar`` (a one-value SELECT of the caller's) and what :meth:`user_by_email_index` reads
        with ``probe``, in one statement; the user is None when no account holds the index."""
        text = self._scalar_sql.get(scalar[0])
        if text is None:
            text = self._scalar_sql[scalar[0]] = self.signin_scalar_sql.replace("{scalar}", scalar[0], 1)
        connection = connections[self.alias]
        row = self._fetch(text, [*scalar[1], *failures_params(connection, probe.idx, probe.since), index])
        assert row is not None  # the LEFT JOIN of one row
        if row[1 + self.signin_pk_position] is None:  # no account holds the index
            return row[0], None
        return row[0], self._signin_user(row[1:], probe)

    def _signin_user(self, row: Sequence[Any], probe: FailureProbe | None) -> User:
        """The user of a sign-in lookup's row (its columns, then the probe's three when asked)."""
        n = len(self.signin_converters)
        user = User.from_db(self.alias, self.signin_attnames, self._convert(row[:n], self.signin_converters))
        if probe is not None:
            keep_probed(user, probe, failures_from_row(*row[n:]))
        return user


# The sign-in's user, read by django-axes' lockout check in its statement (accounts.axes_handler):
# (e-mail blind index, user or None), taken by the backend (accounts.backends) for the same index.
SIGNIN_USER_ATTRIBUTE = "_identity_signin_user"


def lockout_and_user(scalar: tuple[str, list[Any]], index: str, probe: FailureProbe) -> tuple[Any, User | None]:
    return _lookups.get().scalar_and_user(scalar, index, probe)


def user_for_sign_in(email: str, probe: FailureProbe | None = None) -> User | None:
    """The account an e-mail address signs in to, by its blind index: one fixed statement (with the
    risk engine's failure counts for ``probe``: accounts.risk.engine.FailureProbe)."""
    return _lookups.get().user_by_email_index(email_index(email), probe)


class _PerDatabase:
    def __init__(self) -> None:
        self._by_alias: dict[str, Lookups] = {}

    def get(self) -> Lookups:
        alias = router.db_for_read(AccessToken)
        lookups = self._by_alias.get(alias)
        if lookups is None:
            lookups = self._by_alias[alias] = Lookups(alias)
        return lookups


_lookups = _PerDatabase()


def refresh_session(*, refresh: str) -> IssuedTokens:
    """Rotate: a new access and refresh token for the session, the old refresh token spent.

    Raises TokenReused after the session's revocation is committed: the error must not roll it back.
    """
    outcome = _rotate(refresh)
    if outcome is None:
        raise TokenReused("refresh token already used: the session is revoked")
    return outcome


@transaction.atomic
def _rotate(refresh: str) -> IssuedTokens | None:
    now = timezone.now()
    row = (
        RefreshToken.objects.select_for_update()
        .select_related("session", "session__user")
        .filter(token_hash=token_digest(refresh))
        .first()
    )
    if row is None:
        raise TokenError("unknown refresh token")
    session = AuthSession.objects.select_for_update().get(pk=row.session_id)
    if row.used_at is not None:
        if session.revoked_at is None:  # the first sign of a stolen token: end the family, alert
            _revoke(session, reason="token_reused", now=now)
            event = record_event(SecurityEvent.Kind.TOKEN_REUSED, user=session.user, device=session.device)
            raise_alert(
                "token_reuse",
                severity="critical",
                user=session.user,
                event=event,
                details={"session_id": str(session.pk)},
            )
            audit.record(
                "accounts.session.token_reused", actor=None, subject=session.user, data={"session": str(session.pk)}
            )
        return None
    if session.revoked_at is not None or session.expires_at <= now or row.expires_at <= now:
        raise TokenError("the session has ended")
    if not session.user.is_active:
        raise TokenError("the account is not active")
    row.used_at = now
    row.save(update_fields=["used_at"])
    session.last_used_at = now
    session.save(update_fields=["last_used_at"])
    return issue_tokens(session, now)


def _revoke(session: AuthSession, *, reason: str, now: datetime.datetime) -> bool:
    if session.revoked_at is not None:
        return False
    AuthSession.objects.filter(pk=session.pk).update(revoked_at=now, revoked_reason=reason)
    tokens = AccessToken.objects.filter(session=session)
    # Marked in the shared cache now, not on commit: a request racing the commit may still pass,
    # none after it. Should the transaction roll back, these tokens stay refused (fail closed).
    _mark_revoked(list(tokens.values_list("token_hash", flat=True)) if token_cache_enabled() else [])
    tokens.delete()
    RefreshToken.objects.filter(session=session, used_at__isnull=True).update(used_at=now)
    session.revoked_at, session.revoked_reason = now, reason
    # A web session ends at its next request: the portal's middleware finds its AuthSession revoked.
    return True


@transaction.atomic
def revoke_session(*, session: AuthSession, actor: User | str | None, reason: str) -> bool:
    """End one session and all its tokens. Idempotent."""
    revoked = _revoke(session, reason=reason, now=timezone.now())
    if revoked:
        record_event(SecurityEvent.Kind.SESSION_REVOKED, user=session.user, device=session.device)
        audit.record(
            "accounts.session.revoked",
            actor=actor,
            subject=session.user,
            data={"session": str(session.pk), "reason": reason},
        )
    return revoked


@transaction.atomic
def revoke_all_sessions(*, user: User, actor: User | str | None, reason: str, keep: AuthSession | None = None) -> int:
    """End every session of a user (password change, lockout by an analyst, erasure), except ``keep``."""
    now = timezone.now()
    count = 0
    for session in AuthSession.objects.select_for_update().filter(user=user, revoked_at__isnull=True):
        if keep is not None and session.pk == keep.pk:
            continue
        count += _revoke(session, reason=reason, now=now)
    if count:
        audit.record("accounts.session.all_revoked", actor=actor, subject=user, data={"count": count, "reason": reason})
    return count


@transaction.atomic
def logout(*, refresh: str) -> bool:
    row = RefreshToken.objects.select_related("session").filter(token_hash=token_digest(refresh)).first()
    if row is None:
        return False
    return revoke_session(session=row.session, actor=row.session.user, reason="logout")


def has_fresh_second_factor(session: AuthSession | None) -> bool:
    if session is None or session.mfa_at is None:
        return False
    return timezone.now() - session.mfa_at <= datetime.timedelta(minutes=settings.STEP_UP_MAX_AGE_MINUTES)
