"""A malformed setting stops start-up with a message that names the variable."""

import os
import subprocess
import sys

import pytest
from django.conf import settings


def start(**overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env |= {"DEBUG": "1", "DJANGO_SETTINGS_MODULE": "aquadash.settings", **overrides}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


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
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(variable, value):
    result = start(**{variable: value})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable}" in result.stderr


def test_the_development_defaults_start(tmp_path):
    result = start(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert result.returncode == 0, result.stderr
