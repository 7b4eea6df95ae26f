"""Settings, read from the environment.

Development defaults are safe and need no set-up (SQLite in var/, a local-memory cache, the
simulator on 127.0.0.1:8765); production sets DEBUG=0 and passes DATABASE_URL, REDIS_URL,
SECRET_KEY and AQUADASH_ENCRYPTION_KEYS. A malformed value stops start-up with a message that
names the variable.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off.")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}.") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def rate(name: str, default: str) -> tuple[int, int]:
    """`60/min` as (60, 60): so many requests per second, minute, hour or day."""
    value = os.environ.get(name, "").strip() or default
    count, _, per = value.partition("/")
    seconds = {"s": 1, "sec": 1, "min": 60, "hour": 3600, "day": 86400}.get(per.strip())
    if not count.strip().isdigit() or int(count) < 1 or seconds is None:
        raise ImproperlyConfigured(
            f"{name} must look like 60/min (a number, then /s, /min, /hour or /day), not {value!r}."
        )
    return int(count), seconds


def host_port_list(name: str) -> frozenset[tuple[str, int]]:
    """Parse `host:port,host:port`; a port is required so an extra host never widens to 443."""
    pairs = set()
    for item in envlist(name):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{name} entries must look like host:port, not {item!r}.")
        pairs.add((host.strip("[]").lower(), int(port)))
    return frozenset(pairs)


def proxy_url(name: str) -> str:
    """An http:// or https:// proxy (user:password@ allowed), or "" when unset. The value is never
    repeated in the message: it may hold the proxy's password."""
    value = os.environ.get(name, "").strip()
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ImproperlyConfigured(
            f"{name} must be the address of an http:// or https:// proxy, such as "
            "http://proxy.internal:3128, with nothing after the port."
        )
    return value.rstrip("/")


def group_mapping(name: str) -> dict[str, str]:
    """Parse `provider-group=django-group,...`."""
    mapping = {}
    for item in envlist(name):
        outside, _, inside = item.partition("=")
        if not outside.strip() or not inside.strip():
            raise ImproperlyConfigured(
                f"{name} entries must look like provider-group=django-group, not {item!r}."
            )
        mapping[outside.strip()] = inside.strip()
    return mapping


def fernet_keys(name: str, *, debug: bool, development_key_file: Path) -> list[str]:
    """Parse comma-separated Fernet keys, newest first.

    Without keys every stored Zuora secret is unreadable, so outside development a missing key
    stops start-up. In development an unset variable means a key generated once into var/, so
    `make run` needs no set-up.
    """
    keys = envlist(name)
    if not keys and debug:
        keys = [development_key(development_key_file)]
    if not keys:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off: one or more Fernet keys, comma-separated, "
            "newest first. Make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    return keys


def development_key(path: Path) -> str:
    path.parent.mkdir(exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = Fernet.generate_key().decode()
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


DEBUG = envbool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "development-only-not-secret"  # noqa: S105

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "django_tasks_db",
    "aquadash",
]

MIDDLEWARE = [
    "aquadash.metrics.CountRequests",  # outermost: counts every answer, redirects included
    "aquadash.audit.RequestId",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "aquadash.access.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",
    # Innermost, so its pages still pass the CSP and other headers above it, and a 404 it
    # renders can still become CommonMiddleware's redirect to the address with a slash.
    "aquadash.error_pages.OwnErrorPages",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "aquadash.urls"
WSGI_APPLICATION = "aquadash.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(exist_ok=True)  # SQLite creates the file, but not the folder it goes in
try:
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'aquadash.sqlite3'}",
            conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(
        f"DATABASE_URL must look like postgres://user@host:5432/name or "
        f"sqlite:////absolute/path.sqlite3 ({exc})."
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # No persistent connections for SQLite: they only hold file locks. WAL lets readers go on
    # while one request writes; IMMEDIATE takes the write lock when a transaction starts, so two
    # writers queue for up to `timeout` seconds instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must look like redis://host:6379/0 (or rediss://).")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "aquadash.shared_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "aquadash",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    # Sessions read from Redis and written through to the database, which keeps them.
    SESSION_ENGINE = "aquadash.sessions"
elif os.environ.get("CACHE_TABLE"):
    # Without Redis, several processes on one machine (`make run`'s web server and worker) can
    # share a cache table in the database (`manage.py createcachetable`).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": os.environ["CACHE_TABLE"],
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Rendered parts of pages ({% cache %}), kept by each process for itself: cheaper than a round
# trip to Redis, and a page renders the same whether Redis is up or down.
CACHES["template_fragments"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "template-fragments",
    "OPTIONS": {"MAX_ENTRIES": 1000},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling: after AXES_FAILURE_LIMIT wrong passwords for one username from one client
# address, that pair is refused for AXES_COOLOFF_MINUTES (other users behind the same proxy are not
# affected). The address is REMOTE_ADDR, unless AQUADASH_TRUSTED_PROXIES says how many proxies
# of ours stand in front: then it is the X-Forwarded-For entry that the outermost one added, and
# whatever a client wrote before it is ignored.
AQUADASH_TRUSTED_PROXIES = envint("AQUADASH_TRUSTED_PROXIES", 0)
AXES_CLIENT_IP_CALLABLE = "aquadash.access.client_address"
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_WHITELIST_CALLABLE = "aquadash.identity.not_a_password"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on with OpenID Connect, on when OIDC_ISSUER is set (README, "Single sign-on").
# People are matched on the issuer and the token's `sub`; AQUADASH_OIDC_GROUPS maps the provider's
# group names to Django groups (provider=django,...), set again at every sign-in and refresh.
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").strip()
AQUADASH_OIDC = bool(OIDC_ISSUER)
AQUADASH_OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "").strip() or "single sign-on"
AQUADASH_OIDC_GROUPS = group_mapping("AQUADASH_OIDC_GROUPS")
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "").strip()
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "").strip()
if AQUADASH_OIDC and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET must be.")
# Empty: read from the issuer's /.well-known/openid-configuration when first needed.
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_AUTHORIZATION_ENDPOINT", "").strip()
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_TOKEN_ENDPOINT", "").strip()
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_USERINFO_ENDPOINT", "").strip()
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_JWKS_ENDPOINT", "").strip()
OIDC_RP_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile groups").strip()
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "groups").strip()
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = (3.05, 10)
# How often a signed-in person is sent back to the provider (silently) to be checked again.
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = envint("OIDC_REFRESH_SECONDS", 900)
OIDC_AUTHENTICATE_CLASS = "aquadash.identity.SignInView"
OIDC_CALLBACK_CLASS = "aquadash.identity.CallbackView"
OIDC_EXEMPT_URLS = ["login", "logout", "health"]
# AQUADASH_LOCAL_LOGIN=0: no passwords, except for the superusers listed in AQUADASH_BREAK_GLASS
# (at /accounts/login/?break-glass), for when the provider is down.
AQUADASH_LOCAL_LOGIN = envbool("AQUADASH_LOCAL_LOGIN", True)
AQUADASH_BREAK_GLASS = frozenset(envlist("AQUADASH_BREAK_GLASS"))
if not AQUADASH_LOCAL_LOGIN:
    AUTHENTICATION_BACKENDS[1] = "aquadash.identity.LocalBackend"
if AQUADASH_OIDC:
    AUTHENTICATION_BACKENDS.append("aquadash.identity.OIDCBackend")
    # After the messages, which its refusals use.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
        "aquadash.identity.SessionRefresh",
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
FORMAT_MODULE_PATH = ["aquadash.formats"]
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Security headers. The policy allows nothing inline without the per-response nonce.
SECURE_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
if proxy_header := os.environ.get("SECURE_PROXY_SSL_HEADER"):
    # e.g. "HTTP_X_FORWARDED_PROTO,https" when behind a TLS-terminating proxy.
    name, _, value = proxy_header.partition(",")
    SECURE_PROXY_SSL_HEADER = (name.strip(), value.strip() or "https")

# Zuora. Outbound calls may go only to Zuora's documented REST hosts and to these host:port pairs
# (the simulator, tests).
ZUORA_EXTRA_HOSTS = host_port_list("ZUORA_EXTRA_HOSTS")
# Plain http:// base URLs send the secret unencrypted: only for a simulator on this machine.
ZUORA_ALLOW_HTTP = envbool("ZUORA_ALLOW_HTTP", DEBUG)
ZUORA_CONNECT_TIMEOUT = envfloat("ZUORA_CONNECT_TIMEOUT", 3.05)
# For servers whose only way out is a proxy: calls to Zuora are tunnelled through it (CONNECT).
ZUORA_PROXY = proxy_url("ZUORA_PROXY")
ZUORA_READ_TIMEOUT = envfloat("ZUORA_READ_TIMEOUT", 15.0)

# Keys for the tenants' stored Zuora secrets, independent of SECRET_KEY. Newest first: new
# secrets use the first key, and `manage.py rotate_secrets` moves old ones onto it.
AQUADASH_ENCRYPTION_KEYS = fernet_keys(
    "AQUADASH_ENCRYPTION_KEYS", debug=DEBUG, development_key_file=VAR_DIR / "encryption.key"
)
# How often a page watching a running job refreshes, and so how often Zuora is asked about it.
AQUADASH_POLL_SECONDS = envint("AQUADASH_POLL_SECONDS", 5)
# Zuora's API allowance is the customer's, shared with all their integrations: pages and watches
# ask about a running job every tenth of its age, from AQUADASH_POLL_SECONDS up to this, and this
# often when fewer than AQUADASH_RATE_RESERVE percent of the tenant's allowance are left.
AQUADASH_POLL_MAX_SECONDS = envint("AQUADASH_POLL_MAX_SECONDS", 60)
AQUADASH_RATE_RESERVE = envint("AQUADASH_RATE_RESERVE", 20)
# The circuit breaker: after this many failed calls in a row to one tenant's Zuora (timeouts,
# broken connections, 5xx), nobody asks it for AQUADASH_BREAKER_SECONDS; then one probe does.
AQUADASH_BREAKER_FAILURES = envint("AQUADASH_BREAKER_FAILURES", 5)
AQUADASH_BREAKER_SECONDS = envint("AQUADASH_BREAKER_SECONDS", 60)
# How long a request waits for another request's answer from Zuora before it shows the last
# known state instead: short, so a slow Zuora cannot hold every worker.
AQUADASH_WAIT_SECONDS = envfloat("AQUADASH_WAIT_SECONDS", 2.0)
# Off only for bench/herd.py's baseline: each poll of a running job then asks Zuora itself,
# with no shared answer and no single-flight lock. Never turn it off in production.
AQUADASH_COALESCE = envbool("AQUADASH_COALESCE", True)
# Zuora purges result files this many days after a job completes ("Get results files" in its
# AQuA documentation says 3); older jobs' download links warn before anyone clicks.
AQUADASH_FILE_RETENTION_DAYS = envint("AQUADASH_FILE_RETENTION_DAYS", 3)
# Count the records of each result file as it is downloaded and check them against Zuora's
# recordCount. Off saves a little CPU on plain file downloads; joined and Excel downloads, which
# read every record anyway, are always counted.
AQUADASH_COUNT_RECORDS = envbool("AQUADASH_COUNT_RECORDS", True)
# Heavy downloads (xlsx, CSV for Excel, whole batches, job zips) each hold a server thread and
# CPU for as long as they last: at most this many at once for one person, and this many in all
# (counted in the shared cache, so across every app server). Keep the total below gunicorn's
# --threads (THREADS in the Makefile, 8) so that each worker keeps threads for pages and /health/.
AQUADASH_HEAVY_DOWNLOADS_PER_PERSON = envint("AQUADASH_HEAVY_DOWNLOADS_PER_PERSON", 2)
AQUADASH_HEAVY_DOWNLOADS = envint("AQUADASH_HEAVY_DOWNLOADS", 4)
if min(AQUADASH_HEAVY_DOWNLOADS_PER_PERSON, AQUADASH_HEAVY_DOWNLOADS) < 1:
    raise ImproperlyConfigured(
        "AQUADASH_HEAVY_DOWNLOADS and AQUADASH_HEAVY_DOWNLOADS_PER_PERSON must be 1 or more."
    )

# Error reports by e-mail when ADMINS is set (comma-separated addresses). Reports and log lines
# pass through filters that hide secrets, tokens and Authorization values.
ADMINS = envlist("ADMINS")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "aquadash@localhost")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", SERVER_EMAIL)
# Watch notifications and error reports go out by SMTP; `make run` (DEBUG) prints them in the
# terminal instead, unless EMAIL_BACKEND says otherwise.
email_backend = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {"default": {"BACKEND": email_backend}}
if email_backend == "django.core.mail.backends.filebased.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {"file_path": os.environ.get("EMAIL_FILE_PATH", "var/mail")}
if email_backend == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": envint("EMAIL_PORT", 25),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": envbool("EMAIL_USE_TLS", False),
        "timeout": 10,
    }

# Background work (watched jobs, notifications) runs in `manage.py db_worker` processes, which
# share the queue through the database: any number of them, on any server.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Finding a job in any tenant: how many tenants are asked at once, and how long the search may
# take however slow a tenant is (a tenant still asking then is reported as not answering).
AQUADASH_FIND_THREADS = envint("AQUADASH_FIND_THREADS", 8)
AQUADASH_FIND_SECONDS = envfloat("AQUADASH_FIND_SECONDS", 8.0)
# Comparing a stateful job with the previous run of its session: a batch whose records changed
# by more than this many percent is highlighted.
AQUADASH_COMPARE_THRESHOLD = envfloat("AQUADASH_COMPARE_THRESHOLD", 50.0)
# A whole-batch or whole-job download estimated larger than this many GB asks to be confirmed
# first: it may take long and fill a laptop's disk.
AQUADASH_CONFIRM_GB = envfloat("AQUADASH_CONFIRM_GB", 2.0)
# Requests one API token may make, per second, minute, hour or day; beyond them a 429 with
# Retry-After. Counted in the shared cache, so across every app server.
AQUADASH_API_RATE = rate("AQUADASH_API_RATE", "60/min")
# A watch ends on its own this many hours after it started, with a notice: Zuora stops a query
# after 3 hours, so a job still running by then is worth telling someone about.
AQUADASH_WATCH_HOURS = envint("AQUADASH_WATCH_HOURS", 24)
# How many watched jobs one worker asks Zuora about at once. A thread waits for one answer at a
# time, but checking costs CPU under one interpreter lock: past a few threads a busy worker gets
# slower (bench/watch.py: 8 threads check 1,000 jobs slower than 3). Raise it when Zuora answers
# slowly and the worker's CPU idles; or run more workers.
AQUADASH_WATCH_THREADS = envint("AQUADASH_WATCH_THREADS", 4)
# Chat webhooks may be posted only to these hosts (a leading "." allows subdomains); the
# defaults are Slack, Google Chat, Discord and Microsoft Teams. Hosts listed here that are not
# among the defaults are the operator's choice and may be internal, like ZUORA_EXTRA_HOSTS.
AQUADASH_WEBHOOK_HOSTS = envlist(
    "AQUADASH_WEBHOOK_HOSTS",
    "hooks.slack.com,chat.googleapis.com,discord.com,.webhook.office.com",
)
# Plain http:// webhooks send the URL's secret path unencrypted: only for development and tests.
AQUADASH_WEBHOOK_ALLOW_HTTP = envbool("AQUADASH_WEBHOOK_ALLOW_HTTP", DEBUG)
# A notification that fails is tried this many times in all, waiting longer each time.
AQUADASH_NOTIFY_ATTEMPTS = envint("AQUADASH_NOTIFY_ATTEMPTS", 4)
AQUADASH_NOTIFY_RETRY_SECONDS = envint("AQUADASH_NOTIFY_RETRY_SECONDS", 30)
DEFAULT_EXCEPTION_REPORTER_FILTER = "aquadash.redaction.SecretHidingReporterFilter"
# Keep finished tasks (watch rounds, notifications) in the queue's table this many days; the
# worker deletes older ones itself, once an hour.
AQUADASH_TASK_DAYS = envint("AQUADASH_TASK_DAYS", 2)

# /metrics for Prometheus answers only with this token (Authorization: Bearer); unset, it is off
# (404). Under gunicorn's several processes, PROMETHEUS_MULTIPROC_DIR names the directory where
# each keeps its counters (`make serve` sets it; gunicorn.conf.py clears it at start).
AQUADASH_METRICS_TOKEN = os.environ.get("AQUADASH_METRICS_TOKEN", "").strip()
if metrics_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    try:
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR must be a directory aquadash can write ({exc.strerror})."
        ) from None

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()


def not_a_task_line(record: logging.LogRecord) -> bool:
    """The task queue logs each task it starts and ends, a few lines a round: below warnings
    they are dropped unless LOG_LEVEL is DEBUG, and each round logs one line of its own."""
    quiet = record.name.startswith(("django.tasks", "django_tasks_db"))
    return not quiet or record.levelno >= logging.WARNING or LOG_LEVEL == "DEBUG"


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "aquadash.redaction.RedactSecrets"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "no_task_lines": {"()": "django.utils.log.CallbackFilter", "callback": not_a_task_line},
    },
    "formatters": {"message_only": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact", "no_task_lines"]},
        # One JSON object a line, nothing before it, on stderr: for the security team's log
        # pipeline (audit.py writes them).
        "audit": {
            "class": "logging.StreamHandler",
            "formatter": "message_only",
            "filters": ["redact"],
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "redact"],
        },
    },
    # Replaces Django's own "django" handlers so error mails go through the redacting filter.
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        # The sign-in throttle logs four INFO lines per sign-in, drowning what a terminal is
        # read for (the worker's e-mails): only at LOG_LEVEL=DEBUG.
        "axes": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
        # Every AuditEvent, whatever LOG_LEVEL says; only on its own handler.
        "aquadash.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# The archive of result files (archive.py): where aquadash keeps copies of result files before
# Zuora purges them. Empty: the filesystem under var/archive (one server); s3://bucket/prefix:
# any S3-compatible store, shared by every app server and worker, with the usual AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_S3_REGION_NAME and, for stores other than Amazon's,
# AWS_S3_ENDPOINT_URL (and AWS_S3_ADDRESSING_STYLE=path); file:///path: the filesystem there.
AQUADASH_ARCHIVE_URL = os.environ.get("AQUADASH_ARCHIVE_URL", "").strip()
# Kept files are removed this many days after they were kept, never sooner.
AQUADASH_ARCHIVE_DAYS = envint("AQUADASH_ARCHIVE_DAYS", 400)
# Each tenant's archive at most (a tenant's own limit in the admin wins): at the limit new
# archiving stops, with a warning to admins.
AQUADASH_ARCHIVE_MAX_GB = envfloat("AQUADASH_ARCHIVE_MAX_GB", 50.0)


def archive_storage(url: str) -> dict:
    """The STORAGES entry for AQUADASH_ARCHIVE_URL."""
    parts = urlsplit(url)
    if not url:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": VAR_DIR / "archive"},
        }
    if parts.scheme == "file" and parts.path:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": parts.path},
        }
    if parts.scheme == "s3" and parts.netloc:
        from boto3.s3.transfer import TransferConfig

        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": parts.netloc,
                "location": parts.path.strip("/"),
                "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
                "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
                # "path" for stores that serve buckets under one host (MinIO and the like).
                "addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE") or None,
                "default_acl": None,  # the bucket's own: private unless someone opened it
                "querystring_auth": True,
                "file_overwrite": False,
                # Uploads in 8 MB parts, two at a time: a copy holds about 16 MB, whatever the
                # file's size (boto3's default is ten at a time).
                "transfer_config": TransferConfig(
                    multipart_threshold=8 * 1024 * 1024,
                    multipart_chunksize=8 * 1024 * 1024,
                    max_concurrency=2,
                ),
            },
        }
    raise ImproperlyConfigured(
        "AQUADASH_ARCHIVE_URL must be empty (var/archive), file:///a/path or "
        f"s3://bucket/prefix, not {url!r}."
    )


STORAGES["archive"] = archive_storage(AQUADASH_ARCHIVE_URL)
