"""What the benchmarks share: the simulator and aquadash as real servers on loopback, set up in a
temporary place, and signed-in HTTP sessions."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, "manage.py"]
SIM_AUTH = ("demo@aquadash.example", "demo-password")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def environment(sim_port: int, **overrides: str) -> dict[str, str]:
    """Production settings on loopback: a fresh secret key and encryption key, plain http."""
    workdir = Path(tempfile.mkdtemp(prefix="aquadash-bench-"))
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AQUADASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "SECURE_HSTS_SECONDS": "0",
        "ZUORA_EXTRA_HOSTS": f"127.0.0.1:{sim_port}",
        "ZUORA_ALLOW_HTTP": "1",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def prepare(env: dict[str, str], sim_port: int) -> str:
    """Migrate, collect static files, add the tenant "bench" on the simulator and a superuser
    "bench"; returns the superuser's password."""
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([*MANAGE, *command], cwd=ROOT, env=env, check=True, capture_output=True)
    password = secrets.token_urlsafe(16)
    setup = (
        "from django.contrib.auth.models import User\n"
        "from aquadash.models import Tenant\n"
        "from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET\n"
        "Tenant.objects.filter(slug='bench').delete()\n"
        "t = Tenant(slug='bench', name='Bench', environment='custom', "
        f"base_url='http://127.0.0.1:{sim_port}', identity=DEMO_CLIENT_ID)\n"
        "t.set_secret(DEMO_CLIENT_SECRET); t.full_clean(); t.save()\n"
        "User.objects.filter(username='bench').delete()\n"
        f"User.objects.create_superuser('bench', password='{password}')\n"
    )
    subprocess.run(
        [*MANAGE, "shell", "-c", setup], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return password


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen]]:
    """Servers started into the list are stopped when the block ends, however it ends."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=10)


def start(started: list, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started.append(process)
    return process


def gunicorn(port: int, workers: int = 2, threads: int = 4) -> list[str]:
    # Idle connections are kept longer than the 2 s between polls: else the server closes one
    # just as a client reuses it, a race browsers retry and these simple clients would count.
    options = f"--worker-class gthread --workers {workers} --threads {threads} --timeout 120 "
    options += f"--keep-alive 10 --bind 127.0.0.1:{port}"
    return [sys.executable, "-m", "gunicorn", "aquadash.wsgi", *options.split()]


def signed_in(base: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=10)
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "username": "bench",
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
    )
    response.raise_for_status()
    return session
