"""What the benchmarks share: the simulator and aquadash as real servers on loopback, set up in a
temporary place or in a database of their own, signed-in HTTP sessions, a load generator, the
CPU that servers use, and the checks each benchmark prints and bench/report.py collects."""

import atexit
import contextlib
import http.client
import json
import multiprocessing
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, "manage.py"]
SIM_AUTH = ("demo@aquadash.example", "demo-password")
# This machine's services. Each benchmark makes a database of its own there, and empties Redis
# database 5 (tests use 0), so none of them touches another's data.
POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/5"


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
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy starting
            time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def environment(sim_port: int, extra_hosts: str = "", **overrides: str) -> dict[str, str]:
    """Production settings on loopback: a fresh secret key and encryption key, plain http."""
    workdir = Path(tempfile.mkdtemp(prefix="aquadash-bench-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AQUADASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "SECURE_HSTS_SECONDS": "0",
        "ZUORA_EXTRA_HOSTS": ",".join(filter(None, [f"127.0.0.1:{sim_port}", extra_hosts])),
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
    # Stopped, a worker waits for its threads, one of which may be waiting seconds for a request
    # on a connection a client opened ahead: after 2 s the server kills it.
    options += f"--keep-alive 10 --graceful-timeout 2 --bind 127.0.0.1:{port}"
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


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


@contextlib.contextmanager
def postgres_database(name: str, server: str = POSTGRES) -> Iterator[str]:
    """An empty database `name` on the server, dropped again when the block ends."""
    admin = server.rsplit("/", 1)[0] + "/postgres"
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(drop)
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(drop)


@dataclass(frozen=True)
class Servers:
    """A running simulator and aquadash, and how to reach them."""

    simulator: str  # base URL
    base: str  # aquadash's base URL
    password: str  # the superuser "bench"'s
    aquadash: subprocess.Popen
    zuora: subprocess.Popen  # the simulator's process
    env: dict[str, str]


@contextlib.contextmanager
def production(
    name: str,
    *,
    postgres: str = POSTGRES,
    redis_url: str = REDIS,
    workers: int = 2,
    threads: int = 8,
    batch_seconds: float = 8.0,
    extra_hosts: str = "",
    **overrides: str,
) -> Iterator[Servers]:
    """The simulator and aquadash as `make serve` runs it (gunicorn, gthread, 2 workers of 8
    threads), on PostgreSQL (database aquadash_bench_<name>) and Redis; `extra_hosts` are
    host:port pairs allowed besides the simulator's, `overrides` environment variables."""
    sim_port, port = free_port(), free_port()
    redis.Redis.from_url(redis_url).flushdb()
    with postgres_database(f"aquadash_bench_{name}", postgres) as database, processes() as started:
        env = environment(
            sim_port, extra_hosts, DATABASE_URL=database, REDIS_URL=redis_url, **overrides
        )
        yield from _serve(started, env, sim_port, gunicorn(port, workers, threads), batch_seconds)


@contextlib.contextmanager
def development(*, batch_seconds: float = 8.0, **overrides: str) -> Iterator[Servers]:
    """The simulator and aquadash as `make run` serves them: Django's development server,
    SQLite, no Redis."""
    sim_port, port = free_port(), free_port()
    server = [*MANAGE, "runserver", "--noreload", f"127.0.0.1:{port}"]
    with processes() as started:
        env = environment(sim_port, DEBUG="1", **overrides)
        yield from _serve(started, env, sim_port, server, batch_seconds)


def _serve(
    started: list, env: dict[str, str], sim_port: int, server: list[str], batch_seconds: float
) -> Iterator[Servers]:
    password = prepare(env, sim_port)
    simulate = ["simulate_zuora", "--port", str(sim_port), "--batch-seconds", str(batch_seconds)]
    # One simulator stands in for every tenant of a benchmark; Zuora caps jobs per tenant.
    simulate += ["--max-concurrent-jobs", "100000"]
    zuora = start(started, [*MANAGE, *simulate], env)
    aquadash = start(started, server, env)
    port = server[-1].rsplit(":", 1)[1]
    simulator, base = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
    wait_for(simulator + "/_simulator/catalogue")
    wait_for(base + "/health/")
    yield Servers(simulator, base, password, aquadash, zuora, env)


def workers(pid: int) -> list[str]:
    """A server's child processes (gunicorn's workers)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [child for task in tasks for child in (task / "children").read_text().split()]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) that a process and its children have used so far."""
    ticks = 0
    for process in [str(pid), *workers(pid)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime and stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, whoever kept it busy."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


# --- Load --------------------------------------------------------------------------------------


def load_client() -> str:
    """wrk when it is installed (Debian's `wrk`: light, so the server gets the CPU), else a
    Python client of several processes."""
    return "wrk" if shutil.which("wrk") else "python"


def hammer(
    url: str, *, headers: dict[str, str], seconds: int, connections: int, client: str
) -> tuple[float, int]:
    """Requests per second that `connections` keep-alive connections get from one URL, each
    sending its next request as soon as the last is answered, and how many answers were not
    200 (wrk counts 3xx as answers: check the URL answers 200 before and after)."""
    if client == "wrk":
        command = ["wrk", "--threads", "1", "--connections", str(connections)]
        command += ["--duration", f"{seconds}s", "--timeout", "30s"]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
        failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        if socket_errors := re.search(r"Socket errors: (.*)", out):
            failed += sum(int(n) for n in re.findall(r"\d+", socket_errors[1]))
        return rate, failed
    context = multiprocessing.get_context("spawn")
    ready, counts = context.Barrier(connections), context.Queue()
    senders = [
        context.Process(target=_send_for, args=(url, headers, seconds, ready, counts))
        for _ in range(connections)
    ]
    for sender in senders:
        sender.start()
    done = [counts.get(timeout=seconds + 120) for _ in senders]
    for sender in senders:
        sender.join()
    return sum(n for n, _ in done) / seconds, sum(failed for _, failed in done)


def _send_for(url: str, headers: dict, seconds: int, ready: object, counts: object) -> None:
    """One connection's requests, one after another, for `seconds` from when every process
    is ready (they take a while to start)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    done = failed = 0
    ready.wait()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            failed += response.status != 200
        except (OSError, http.client.HTTPException):
            failed += 1
            connection.close()
        done += 1
    counts.put((done, failed))


# --- What each benchmark reports --------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One figure beside its baseline from the same run, and the target it is held to."""

    what: str
    figure: str
    baseline: str
    target: str
    met: bool | None  # None: no target, shown for context


def print_checks(checks: list[Check]) -> None:
    """Print the checks as a table; bench/report.py also collects them from the file named by
    AQUADASH_BENCH_CHECKS for its summary."""
    print("| what | figure | baseline, same run | target | met |")
    print("|---|---:|---|---|---|")
    for check in checks:
        met = "" if check.met is None else ("yes" if check.met else "**no**")
        print(f"| {check.what} | {check.figure} | {check.baseline} | {check.target} | {met} |")
    if path := os.environ.get("AQUADASH_BENCH_CHECKS"):
        with open(path, "a") as file:
            for check in checks:
                file.write(json.dumps(asdict(check)) + "\n")


def rss(pid: int, *, workers_only: bool = False) -> int:
    """Resident memory, in bytes, of a process and its children (or its children alone: a
    gunicorn master's workers)."""
    total = 0
    for process in [*([] if workers_only else [str(pid)]), *workers(pid)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class PeakMemory:
    """Samples a process's memory (as `rss` counts it) every 50 ms while a block runs."""

    def __init__(self, pid: int, *, workers_only: bool = False) -> None:
        self.pid, self.workers_only, self._stop = pid, workers_only, threading.Event()
        self.baseline = self.peak = rss(pid, workers_only=workers_only)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss(self.pid, workers_only=self.workers_only))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)
