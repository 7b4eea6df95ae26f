"""The application's settings with the few values a test run must pin.

Environment variables still win, so CI runs this same suite against PostgreSQL and Redis.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# Fernet key for b"tests-only-encryption-key-32byte".
os.environ.setdefault("AQUADASH_ENCRYPTION_KEYS", "dGVzdHMtb25seS1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("ZUORA_EXTRA_HOSTS", "127.0.0.1:1")
os.environ.setdefault("ZUORA_ALLOW_HTTP", "1")  # the simulator speaks plain http on loopback

from aquadash.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
# Pages render {% static %} with DEBUG off; the manifest only exists after collectstatic.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True  # no STATIC_ROOT in tests; serve from the app directories

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as in production, rather than a shared in-memory database: threaded tests then see
    # SQLite's real locking, with the WAL journal and IMMEDIATE transactions.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"aquadash-test-{os.getpid()}.sqlite3")
    }
