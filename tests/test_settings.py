"""A malformed setting stops start-up with a message that names the variable."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

from tests.conftest import start_django


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "oracle-ish://nowhere"),
        ("REDIS_URL", "localhost:6379"),
        ("ZUORA_EXTRA_HOSTS", "127.0.0.1"),
        ("ZUORA_EXTRA_HOSTS", "127.0.0.1:99999"),
        ("ZUORA_READ_TIMEOUT", "soon"),
        ("AQUADASH_POLL_SECONDS", "5s"),
        ("ZUORA_PROXY", "socks5://proxy.internal:1080"),
        ("ZUORA_PROXY", "proxy.internal:3128"),
        ("ZUORA_PROXY", "http://proxy.internal:port"),
        ("ZUORA_PROXY", "http://proxy.internal:3128/some/path"),
        ("AQUADASH_POLL_MAX_SECONDS", "1m"),
        ("AQUADASH_RATE_RESERVE", "20%"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(variable, value):
    result = start_django(**{"DEBUG": "1", variable: value})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable}" in result.stderr


def test_the_development_defaults_start(tmp_path):
    result = start_django(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert result.returncode == 0, result.stderr


SHOW_DATABASE = (
    "from django.conf import settings\n"
    "from django.db import connection\n"
    "print(settings.SESSION_ENGINE)\n"
    "with connection.cursor() as cursor:\n"
    "    print(cursor.execute('PRAGMA journal_mode').fetchone()[0])\n"
    "print(connection.transaction_mode)\n"
)


def test_sqlite_queues_writers_instead_of_failing(tmp_path):
    result = start_django(
        drop=("REDIS_URL",),
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        then=SHOW_DATABASE,
    )

    assert result.stdout.split() == ["django.contrib.sessions.backends.db", "wal", "IMMEDIATE"]


def test_with_redis_sessions_are_read_from_the_cache(tmp_path):
    result = start_django(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:1/0",
        then="from django.conf import settings; print(settings.SESSION_ENGINE)",
    )

    assert result.stdout.strip() == "aquadash.sessions"


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI runs the suite with Redis)")
def test_the_redis_cache_keeps_one_client_rather_than_building_one_per_call():
    client = cache._cache.get_client()
    cache.set("reused", 1)

    assert cache._cache.get_client(write=True) is client
    assert cache.get("reused") == 1
