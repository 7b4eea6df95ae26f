"""The application's settings with the few values a test run must pin.

Environment variables still win, so CI runs this same suite against PostgreSQL and Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("ZUORA_EXTRA_HOSTS", "127.0.0.1:1")

from aquadash.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
