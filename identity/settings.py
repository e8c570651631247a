"""Settings for Identity Management Compliance, all from the environment (see .env.example).

DEBUG is off unless DJANGO_DEBUG=1. Outside DEBUG a missing secret or key stops start-up with a
message that names it. A git-ignored ``.env`` in the project root is read first, for development.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from identity.crypto.errors import ConfigurationError
from identity.crypto.kek import decode_key, parse_keyring
from identity.env import env_bool, env_int, env_list, env_required, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)

DEBUG = env_bool("DJANGO_DEBUG", False)

KEYS_HINT = "Run `make keys` to write development keys to .env, or see README.md, 'Key management'."

SECRET_KEY = env_required(
    "DJANGO_SECRET_KEY",
    debug=DEBUG,
    debug_default="django-insecure-development-only-key-do-not-use-in-production-0123456789",
    hint="Set it to a long random string (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(64))'`).",
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is not set. It is required when DJANGO_DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Field encryption (identity.crypto) -------------------------------------------------------
# Key-encryption keys, "id:base64(32 bytes)", comma-separated, the first one current.
FIELD_ENCRYPTION_KEYS = env_required("FIELD_ENCRYPTION_KEYS", debug=DEBUG, hint=KEYS_HINT)
BLIND_INDEX_KEY = env_required("BLIND_INDEX_KEY", debug=DEBUG, hint=KEYS_HINT)
# How long an unwrapped data key stays in a process's memory. A shredded key is dropped at once in
# the process that shreds it and within this many seconds everywhere else.
try:
    # Malformed keys stop start-up here, not at the first request that needs them.
    parse_keyring(FIELD_ENCRYPTION_KEYS)
    decode_key(BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")
except ConfigurationError as _exc:
    raise ImproperlyConfigured(f"{_exc}. {KEYS_HINT}") from None
DEK_CACHE_TTL_SECONDS = env_int("DEK_CACHE_TTL_SECONDS", 300, minimum=0)
DEK_CACHE_MAX_ENTRIES = env_int("DEK_CACHE_MAX_ENTRIES", 50_000, minimum=1)

INSTALLED_APPS = [
    "identity.apps.SecondFactorAdminConfig",  # the admin, behind a second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # django-otp's device framework; our factors (accounts.models.factors) replace its TOTP and
    # static plugins, which keep secrets in clear.
    "django_otp",
    # Passkeys (WebAuthn) as a second factor on the same device framework; our views drive it
    # (accounts.portal.passkeys), its own are not mounted.
    "django_otp_webauthn",
    "axes",
    "auditlog",
    "identity",
    "compliance",
    "accounts",
]

MIDDLEWARE = [
    "identity.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.WebSessionMiddleware",
    # Sec-GPC: 1 from a signed-in listener (portal session or API token) opts them out (C-21).
    "compliance.middleware.GlobalPrivacyControlMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "compliance.modelchanges.ModelChangeMiddleware",
    # Last, as django-axes asks: it turns a lockout raised in a view into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "identity.urls"
WSGI_APPLICATION = "identity.wsgi.application"
ASGI_APPLICATION = "identity.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Connections persist (DATABASE_CONN_MAX_AGE) on SQLite too: a new connection re-reads the
    # whole schema on its first query, about 2.5 ms a request (docs/benchmarks.md, GET /me).
    # Write-ahead log with synchronous=NORMAL: a commit is durable at the next checkpoint instead of
    # an fsync each (about 5 ms a sign-in); writers take the lock at BEGIN, so concurrent requests
    # wait for it (busy timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Production sets DATABASE_SSLMODE=verify-full (with PGSSLROOTCERT); see deploy/README.md.
    sslmode = env_str("DATABASE_SSLMODE")
    if sslmode:
        DATABASES["default"].setdefault("OPTIONS", {})["sslmode"] = sslmode
# The wrapped data keys in a database of their own, backed up apart from the data (README, "Key
# management"): then no backup of the main database can bring an erased subject's key back.
KEYSTORE_DATABASE_URL = env_str("KEYSTORE_DATABASE_URL")
if KEYSTORE_DATABASE_URL:
    DATABASES["keystore"] = dj_database_url.parse(
        KEYSTORE_DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)
    )
    DATABASE_ROUTERS = ["identity.routers.KeystoreRouter"]
# The hot paths' fixed statements (and the key store's key lookup) are prepared once per
# connection on PostgreSQL (identity/db.py); the ORM's client-binding cursors never are. Off behind a
# pooler that cannot keep prepared statements.
if env_bool("DATABASE_PREPARED_STATEMENTS", True):
    for _database in DATABASES.values():
        if _database["ENGINE"] != "django.db.backends.sqlite3":
            _database.setdefault("OPTIONS", {})["prepare_threshold"] = 0
# Django's backends, with compilers that decrypt encrypted columns a batch of rows at a time
# (identity/backends): every query, whatever its model, costs one key query per 100 rows at most.
_BATCHING_BACKENDS = {
    "django.db.backends.postgresql": "identity.backends.postgresql",
    "django.db.backends.sqlite3": "identity.backends.sqlite3",
}
for _database in DATABASES.values():
    _database["ENGINE"] = _BATCHING_BACKENDS.get(_database["ENGINE"], _database["ENGINE"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and tasks ---------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "identity"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, tasks run eagerly; Celery still opens its in-memory "broker" to serialise their
# arguments, and kombu warns about a URL without a host name on every task: name one.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://localhost/")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "sweep-privacy-request-deadlines": {
        "task": "compliance.tasks.sweep_deadlines",
        "schedule": env_int("DEADLINE_SWEEP_SECONDS", 3600, minimum=60),
    },
    "purge-expired-exports": {"task": "compliance.tasks.purge_expired_exports", "schedule": 3600},
    "purge-expired-intakes": {"task": "compliance.tasks.purge_expired_intakes", "schedule": 3600},
}

# --- Users, passwords, authentication -----------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out request before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.EmailBackend",
]
# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1 is the minimum; we use more
# memory (see accounts.hashers). PBKDF2 stays accepted so old hashes upgrade at the next sign-in.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [{"NAME": "accounts.passwords.PasswordPolicyValidator"}]
LOGIN_URL = "admin:login"
# USERNAME_FIELD (email) is encrypted, so uniqueness lives on the blind index (email_index):
# Django's check cannot see that; accounts.tests prove uniqueness instead.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

# django-axes: per account-and-IP lockout with a cool-off (never a permanent lock). It is handed a
# blind index of the e-mail and a pseudonymous IP (accounts.lockout), so its tables hold no plaintext.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 15, minimum=1)
AXES_HANDLER = "accounts.axes_handler.DatabaseHandler"  # axes' own, its lockout check a fixed statement
AXES_COOLOFF_TIME = "accounts.lockout.cooloff_time"  # doubles with each lockout in a day, at most 24 h
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.lockout.username_key"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip_key"
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
# Attempts during a lockout do not extend it: the Retry-After we announce stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False
# axes would log every successful sign-in with user.get_username(), the e-mail in clear; our own
# security events record sign-ins (encrypted), so its access log stays off.
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["password", "username", "email", "phone", "code", "token", "otp_token"]
# Proxies in front of the app whose X-Forwarded-For entries are trusted (identity/net.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_VERBOSE = False

# django-auditlog: model changes to staff-facing models. compliance.modelchanges masks encrypted
# fields and records the actor by id only (never the e-mail or IP auditlog would copy in clear).
AUDITLOG_DISABLE_REMOTE_ADDR = True
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_MASK_CALLABLE = "compliance.modelchanges.mask_value"

# --- Sign-in: tokens, sessions, MFA and the risk engine (accounts.risk; README "Sign-in") ------------
ACCESS_TOKEN_MINUTES = min(env_int("ACCESS_TOKEN_MINUTES", 15, minimum=1), 15)  # never more than 15
REFRESH_TOKEN_IDLE_DAYS = env_int("REFRESH_TOKEN_IDLE_DAYS", 14, minimum=1)
SESSION_ABSOLUTE_DAYS = env_int("SESSION_ABSOLUTE_DAYS", 30, minimum=1)
WEB_SESSION_IDLE_SECONDS = env_int("WEB_SESSION_IDLE_SECONDS", 3600, minimum=60)
MFA_CHALLENGE_MINUTES = env_int("MFA_CHALLENGE_MINUTES", 5, minimum=1)
MFA_CHALLENGE_MAX_ATTEMPTS = env_int("MFA_CHALLENGE_MAX_ATTEMPTS", 5, minimum=1)
MFA_MAX_CONSECUTIVE_FAILURES = env_int("MFA_MAX_CONSECUTIVE_FAILURES", 20, minimum=1)
EMAIL_CODE_MINUTES = min(env_int("EMAIL_CODE_MINUTES", 10, minimum=1), 10)
EMAIL_CODES_PER_CHALLENGE = env_int("EMAIL_CODES_PER_CHALLENGE", 3, minimum=1)
GEOIP_PATH = env_str("GEOIP_PATH")
RISK_POLICY_FILE = env_str("RISK_POLICY_FILE")
RISK_POLICY: dict[str, object] = {}
RISK_MAX_TRAVEL_KMH = env_int("RISK_MAX_TRAVEL_KMH", 900, minimum=1)
RISK_ACCOUNT_FAILURES = env_int("RISK_ACCOUNT_FAILURES", 5, minimum=1)
RISK_IP_FAILED_ACCOUNTS = env_int("RISK_IP_FAILED_ACCOUNTS", 10, minimum=1)
RISK_IP_DENYLIST = env_list("RISK_IP_DENYLIST")
SECURITY_ALERT_WEBHOOK_URL = env_str("SECURITY_ALERT_WEBHOOK_URL")
PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 15, minimum=8)
PASSWORD_MIN_LENGTH_WITH_MFA = env_int("PASSWORD_MIN_LENGTH_WITH_MFA", 8, minimum=8)
PASSWORD_MAX_LENGTH = env_int("PASSWORD_MAX_LENGTH", 256, minimum=64)

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "identity.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "register": env_str("THROTTLE_REGISTER", "20/hour"),
        "login": env_str("THROTTLE_LOGIN", "60/minute"),
        "mfa": env_str("THROTTLE_MFA", "30/minute"),
        "mfa_email": env_str("THROTTLE_MFA_EMAIL", "10/hour"),
        "refresh": env_str("THROTTLE_REFRESH", "120/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Identity Management Compliance API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The request types appear in several inputs (signed-in and public requests): one named enum.
    "ENUM_NAME_OVERRIDES": {"PrivacyRequestTypeEnum": "compliance.api.public.REQUEST_TYPES"},
    "DESCRIPTION": "Mobile API: sign-in with adaptive MFA, tokens, account, factors. Errors are "
    "application/problem+json (RFC 9457) with a stable `code`.",
}

# --- Compliance ---------------------------------------------------------------------------------
# Apps whose every model field must be classified in the personal-data registry (compliance.checks).
PERSONAL_DATA_APPS = ["identity", "accounts", "compliance"]
# Library models with personal data that do not point at the user model (so the check would not
# find them by itself); those that do point at it are found and must be declared too.
PERSONAL_DATA_LIBRARY_MODELS = [
    "axes.AccessAttempt",
    "axes.AccessLog",
    "axes.AccessFailureLog",
    "sessions.Session",
    "django_otp_webauthn.WebAuthnAttestation",
]
# Where the deadline sweep sends its digest of overdue and due-soon requests (empty: admin only).
PRIVACY_TEAM_EMAIL = env_str("PRIVACY_TEAM_EMAIL")
# Finished exports (encrypted under each subject's key) and how long their download link lives.
EXPORT_ROOT = env_str("EXPORT_ROOT", str(BASE_DIR / "var" / "exports"))
# Agents' permission documents (compliance.dsr.intake), AES-256-GCM under the consumer's key.
AGENT_DOCUMENT_ROOT = env_str("AGENT_DOCUMENT_ROOT", str(BASE_DIR / "var" / "agent-documents"))
EXPORT_LINK_DAYS = env_int("EXPORT_LINK_DAYS", 7, minimum=1)
ERASURE_GRACE_DAYS = env_int("ERASURE_GRACE_DAYS", 7, minimum=0)
STEP_UP_MAX_AGE_MINUTES = env_int("STEP_UP_MAX_AGE_MINUTES", 10, minimum=1)
# Connected data systems (compliance.systems.sql): external databases described by dataset files,
# reached by export and erasure with their own driver, never through DATABASES.
STREAMING_DATABASE_URL = env_str("STREAMING_DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'streaming.sqlite3'}")
# External services reached by signed webhook (compliance.systems.webhooks): a JSON list of
# {"name", "url", "secret_env", "purpose", "categories"}.
CONNECTED_SERVICES = json.loads(env_str("CONNECTED_SERVICES_JSON", "[]"))
CONNECTED_DATASETS = env_list(
    "CONNECTED_DATASETS", [str(BASE_DIR / "compliance" / "systems" / "datasets" / "streaming_history.json")]
)

# --- Internationalisation -----------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- E-mail -------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "privacy@localhost")
# Where links in e-mails point (no trailing slash).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Passkeys (django-otp-webauthn; README "Sign-in and the risk policy") --------------------------
# A passkey is a second factor here: the password and the risk engine always run first.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
# The relying party id binds every passkey to a domain: changing it later strands them all. Unset:
# the host of SITE_URL, and with DJANGO_DEBUG the host each request came to (e.g. localhost).
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID")
WEBAUTHN_RP_NAME = env_str("WEBAUTHN_RP_NAME", "Identity")  # browsers show it when a passkey is made
OTP_WEBAUTHN_RP_ID_CALLABLE = "accounts.portal.passkeys.relying_party_id"
OTP_WEBAUTHN_RP_NAME = WEBAUTHN_RP_NAME
OTP_WEBAUTHN_HELPER_CLASS = "accounts.portal.passkeys.PortalWebAuthnHelper"
# Origins a ceremony may come from (https://, or http://localhost in development). Unset: the origin
# of SITE_URL when it is https, else the development server's; with DJANGO_DEBUG also the request's.
_site = urllib.parse.urlsplit(SITE_URL)
OTP_WEBAUTHN_ALLOWED_ORIGINS = env_list("WEBAUTHN_ALLOWED_ORIGINS") or [
    f"https://{_site.netloc}" if _site.scheme == "https" else "http://localhost:8000"
]

# --- Transport security (python manage.py check --deploy --fail-level WARNING passes) ------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 63_072_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "__Host-sessionid" if not DEBUG else "sessionid"
SESSION_COOKIE_AGE = env_int("SESSION_ABSOLUTE_SECONDS", 24 * 3600, minimum=60)
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_NAME = "__Host-csrftoken" if not DEBUG else "csrftoken"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Logging: JSON lines with the request id; personal data never goes in (identity.logging) -----
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "identity.logging.RequestIdFilter"},
        "redact": {"()": "identity.logging.RedactPersonalDataFilter"},
    },
    "formatters": {
        "json": {
            "()": "identity.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs the full SQL with parameters at DEBUG: never let that reach a handler.
        "django.db.backends": {"level": "INFO", "propagate": True},
    },
}
