"""Single sign-on tests' helpers: the test OpenID provider (tests/oidc_provider) in a process of
its own on loopback, and aquadash under gunicorn signing in with it."""

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from aquadash.models import Tenant
from tests.conftest import gunicorn_serving

CLIENT_ID = "aquadash"
CLIENT_SECRET = "oidc-client-secret-canary-5f1c"  # noqa: S105  # must never show in a page or log


@functools.cache
def signing_key() -> str:
    """The provider's RS256 key, made for this test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Provider:
    base: str
    issuer: str
    env: dict[str, str]

    def control(self, *args: str) -> None:
        """Change the provider's users or clients (tests/oidc_provider/control.py)."""
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "tests.oidc_provider.control", *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def user(self, name: str, email: str, groups: str = "") -> None:
        self.control("user", name, email, groups)


@contextlib.contextmanager
def provider_serving(directory: Path, *, audience: str = "") -> Iterator[Provider]:
    """django-oauth-toolkit's OpenID provider under gunicorn, its database in `directory`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL"))
    } | {
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "PROVIDER_DATABASE": str(directory / f"provider-{port}.sqlite3"),
        "PROVIDER_ISSUER": f"{base}/o",
        "PROVIDER_KEY": signing_key(),
        "PROVIDER_AUDIENCE": audience,
    }
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "django", "migrate", "--noinput"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (directory / f"provider-{port}.log").open("w") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "tests.oidc_provider.wsgi"]
            + ["--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{port}"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(200):
                try:
                    requests.get(f"{base}/o/.well-known/openid-configuration", timeout=5)
                    break
                except requests.RequestException:  # not listening yet
                    time.sleep(0.05)
            yield Provider(base, f"{base}/o", env)
        finally:
            process.send_signal(signal.SIGQUIT)
            process.wait(timeout=10)


@contextlib.contextmanager
def aquadash_signing_in_with(
    provider: Provider,
    tenant: Tenant,
    *,
    settings_module: str = "tests.settings",
    log: IO | None = None,
    **env: str,
) -> Iterator[str]:
    """aquadash under gunicorn with single sign-on at `provider`, registered there as a client;
    the provider's group "finance" grants aquadash's group "Sim staff"."""
    env = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_PROVIDER_NAME": "Test provider",
        "AQUADASH_OIDC_GROUPS": "finance=Sim staff,ops=Ops",
        # requests, unlike Chromium, keeps Secure cookies from http://127.0.0.1
        "SECURE_COOKIES": "0",
        **env,
    }
    with gunicorn_serving(tenant, settings_module=settings_module, log=log, **env) as base:
        provider.control("client", CLIENT_ID, CLIENT_SECRET, f"{base}/oidc/callback/")
        yield base
