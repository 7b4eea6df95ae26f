import ast
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.cache import cache, caches
from django.db import connection
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from aquadash.models import Tenant
from aquadash.shared_cache import shared_cache
from aquadash.simulator import Simulator, serve


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def imports_of(package: object) -> Iterator[tuple[str, str]]:
    """(file name, imported module) for every import statement in a package's own files."""
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from ((path.name, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                yield path.name, node.module or ""


def wait_until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    """Wait for something another thread or process does, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def start_django(
    *, drop: tuple[str, ...] = (), then: str = "", **env: str
) -> subprocess.CompletedProcess:
    """Start Django with aquadash's own settings in a fresh process, with env changed, and run
    the Python in `then` (its output is in stdout)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (*drop, "DJANGO_SETTINGS_MODULE")
    } | {"DJANGO_SETTINGS_MODULE": "aquadash.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + then],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def database_url() -> str:
    """The test database, as DATABASE_URL, for a server in another process."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts._replace(path=f"/{name}").geturl()


@contextlib.contextmanager
def gunicorn_serving(
    tenant: Tenant,
    *,
    settings_module: str = "tests.settings",
    log: IO | None = None,
    options: tuple[str, ...] = (),
    **env: str,
) -> Iterator[str]:
    """aquadash under gunicorn, as in production, reading the test database and allowed to
    call `tenant`'s Zuora (the simulator); yields its base URL. `options` go on gunicorn's
    command line after ours, so they win. Tests using it need `django_db(transaction=True)`,
    so the server sees what they wrote."""
    zuora = urlsplit(tenant.base_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url(),
        "ZUORA_EXTRA_HOSTS": f"127.0.0.1:1,{zuora.hostname}:{zuora.port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        **env,
    }
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "aquadash.wsgi", "--worker-class", "gthread"]
        + ["--workers", "1", "--threads", "8", "--bind", f"127.0.0.1:{port}"]
        # A worker told to quit still lets its threads finish, and one may be waiting seconds
        # for a request on a connection Chromium opened ahead: after 2 s the server kills it.
        + ["--graceful-timeout", "2", *options],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(base + "/health/", timeout=5)
                break
            except requests.RequestException:  # not listening yet, or still starting
                time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)  # at once: a client may still hold a connection
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts with an empty shared cache (local memory, or Redis in CI), an empty
    fallback for when the shared one is down, and no rendered page fragments."""
    for each in (cache, caches["template_fragments"], shared_cache.local):
        each.clear()
    yield
    for each in (cache, caches["template_fragments"], shared_cache.local):
        each.clear()


@pytest.fixture
def sim_clock() -> FakeClock:
    """The `simulator` fixture's clock, starting at the real time and then frozen.

    Call `sim_clock.advance(seconds)` to move it: jobs run one batch per
    `simulator.batch_seconds`, tokens expire after `simulator.token_lifetime`, result files are
    purged 3 days and jobs 180 days after they started. Faults that sleep use real time.
    """
    return FakeClock(time.time())


@pytest.fixture
def simulator(sim_clock: FakeClock) -> Iterator[Simulator]:
    """A fresh Zuora AQuA simulator served on an ephemeral loopback port, on `sim_clock`.

    `simulator.url` is its base URL; `simulator.add_fault(...)`, `simulator.count(...)` and
    `simulator.forget_job(...)` steer and observe it (see SIMULATOR.md).
    """
    sim = Simulator(clock=sim_clock)
    with serve(sim):
        yield sim


# Every tenant the fixtures make stores this secret, and no response, log record or error report
# anywhere in the suite may contain it (see `canary_never_leaks`).
CANARY_SECRET = "canary-s3cret-4f1d9b2e7a-must-never-leak"
SIM_CLIENT_ID = "sim-client-id"  # the simulator tenant's OAuth client, whose secret is the canary

# Base URLs a tenant must never be given: metadata services, look-alikes, numeric and user@ forms.
DISALLOWED_BASE_URLS = [
    "http://169.254.169.254/",
    "https://rest.zuora.com.evil.test",
    "https://evil.test/rest.zuora.com",
    "https://user@rest.zuora.com",
    "https://rest.zuora.com:8443",
    "http://rest.zuora.com",
    "https://127.0.0.1",
    "https://[::1]",
    "https://2130706433",
    "https://0x7f.1",
    "https://rest.zuor\u0430.com",  # Cyrillic a
]


@pytest.fixture
def make_tenant(db: None) -> Callable[..., Tenant]:
    """make_tenant(slug="acme", *, secret=CANARY_SECRET, groups=(), **fields) -> Tenant."""

    def make(
        slug: str = "acme", *, secret: str = CANARY_SECRET, groups: tuple = (), **fields: object
    ) -> Tenant:
        fields = {
            "name": slug.replace("-", " ").title(),
            "environment": "us-prod-cloud2",
            "auth_method": "oauth",
            "identity": f"{slug}-client-id",
            **fields,
        }
        tenant = Tenant(slug=slug, **fields)
        tenant.set_secret(secret)
        tenant.full_clean()
        tenant.save()
        tenant.groups.set(groups)
        return tenant

    return make


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """make_user(username, *, groups=(), superuser=False, email="") -> User, password
    "password"."""

    def make(
        username: str, *, groups: tuple = (), superuser: bool = False, email: str = ""
    ) -> User:
        user = User.objects.create_user(
            username, email, password="password", is_staff=superuser, is_superuser=superuser
        )
        user.groups.set(groups)
        return user

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    """Tenant "Acme" (slug acme), granted to the group "Acme staff"."""
    return make_tenant("acme", groups=[Group.objects.create(name="Acme staff")])


@pytest.fixture
def member(tenant: Tenant, make_user: Callable[..., User]) -> User:
    """A non-staff user in the group granted `tenant`."""
    return make_user("member", groups=tenant.groups.all())


@pytest.fixture
def member_client(member: User) -> Client:
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def finance_client(simulator_tenant: Tenant, make_user: Callable[..., User]) -> Client:
    """Signed in as "finance", a member of the simulator tenant's group."""
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


@pytest.fixture
def outsider_client(make_user: Callable[..., User]) -> Client:
    """Signed in as a user granted no tenant."""
    client = Client()
    client.force_login(make_user("outsider"))
    return client


@pytest.fixture
def simulator_tenant(
    simulator: Simulator, make_tenant: Callable[..., Tenant], settings: Settings
) -> Tenant:
    """Tenant "Sim" (slug sim) on the `simulator`, group "Sim staff". Its OAuth client's
    secret is CANARY_SECRET, so the secret that really goes to Zuora is the one
    `canary_never_leaks` looks for."""
    host, port = urlsplit(simulator.url).hostname, urlsplit(simulator.url).port
    settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {(host, port)}
    simulator.clients[SIM_CLIENT_ID] = CANARY_SECRET
    return make_tenant(
        "sim",
        secret=CANARY_SECRET,
        environment="custom",
        base_url=simulator.url,
        identity=SIM_CLIENT_ID,
        groups=[Group.objects.create(name="Sim staff")],
    )


@pytest.fixture(autouse=True)
def canary_never_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test whose responses, log records or e-mails contain CANARY_SECRET."""
    texts: list[tuple[str, Callable[[], str]]] = []

    def watch(response: HttpResponseBase) -> HttpResponseBase:
        request = getattr(response, "wsgi_request", None) or getattr(response, "asgi_request", None)
        where = f"the response to {request.path if request else 'a request'}"
        headers = response.serialize_headers().decode(errors="replace")
        texts.append((f"the headers of {where}", lambda: headers))
        if not response.streaming:
            texts.append((where, lambda: response.content.decode(errors="replace")))
            return response
        chunks: list[bytes] = []
        texts.append((where, lambda: b"".join(chunks).decode(errors="replace")))
        if response.is_async:

            async def atap(content: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
                async for chunk in content:
                    chunks.append(chunk)
                    yield chunk

            response.streaming_content = atap(response.streaming_content)
        else:

            def tap(content: Iterator[bytes]) -> Iterator[bytes]:
                for chunk in content:
                    chunks.append(chunk)
                    yield chunk

            response.streaming_content = tap(response.streaming_content)
        return response

    sync_request, async_request = Client.request, AsyncClient.request

    def request(self: Client, **kwargs: object) -> HttpResponseBase:
        return watch(sync_request(self, **kwargs))

    async def arequest(self: AsyncClient, **kwargs: object) -> HttpResponseBase:
        return watch(await async_request(self, **kwargs))

    monkeypatch.setattr(Client, "request", request)
    monkeypatch.setattr(AsyncClient, "request", arequest)

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = logging.Formatter("%(name)s: %(message)s").format(record)
            texts.append((f"a log record from {record.name}", lambda: text))

    recorder = Recorder()
    # The audit lines do not propagate to the root logger: they have a handler of their own.
    loggers = [logging.getLogger(), logging.getLogger("aquadash.audit")]
    for logger in loggers:
        logger.addHandler(recorder)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(recorder)
    for message in getattr(mail, "outbox", []):
        parts = [message.subject, message.body]
        parts += [str(content) for content, _ in getattr(message, "alternatives", [])]
        parts += [str(attachment) for attachment in message.attachments]
        texts.append((f"the e-mail {message.subject!r}", lambda parts=parts: "\n".join(parts)))
    leaks = [where for where, text in texts if CANARY_SECRET in text()]
    if leaks:
        pytest.fail(f"The canary secret leaked into {', '.join(leaks)}.")


LONG_JOB_NAME = (
    "Monthly revenue reconciliation — all subscriptions, rate plan charges and invoice items "
    "for the EMEA entities, fiscal period 2026-11, second run after the FX correction"
)


@pytest.fixture
def admin_trail(make_tenant: Callable[..., Tenant], make_user: Callable[..., User]) -> Tenant:
    """One row in each admin list, with the longest text real use writes there: a tenant with
    a long name, a failed contact, a lookup, a 1.4 GB download of 12 million records, audit
    events, a watch and a failed delivery. Returns the tenant."""
    from datetime import timedelta

    from django.utils import timezone

    from aquadash.models import AuditEvent, Delivery, Download, JobSnapshot, Lookup, Watch

    tenant = make_tenant("acme-emea", name="Acme Corporation — EMEA Production (Cloud 2)")
    tenant.record_contact(
        False,
        "Zuora rejected the stored credentials for tenant Acme Corporation — EMEA Production "
        "(Cloud 2). Ask an admin to update them.",
    )
    user = make_user("margarethe.vandenberg-okonkwo", email="margarethe@acme-emea.example")
    job_id, file_id, batch_id = "2c92c0f97d4e1f8b017d5a3b2e6c1a9f", "8a" * 16, "2c93" * 8
    now = timezone.now()
    JobSnapshot.objects.create(
        tenant=tenant, job_id=job_id, name=LONG_JOB_NAME, status="completed", is_final=True,
        raw={"id": job_id}, last_fetched_at=now, gone_at=now, started_at=now,
        total_records=12_345_678,
    )  # fmt: skip
    Lookup.objects.create(
        user=user, username=user.username, tenant=tenant, job_id=job_id,
        job_name=LONG_JOB_NAME, job_status="completed",
        outcome="failed: Zuora rejected the stored credentials for tenant Acme Corporation — "
        "EMEA Production (Cloud 2). Ask an admin to update them.",
    )  # fmt: skip
    download = Download.start(
        user, tenant, job_id, kind="job", batch_id=batch_id, file_id=file_id, variant="excel"
    )
    download.bytes_sent = 1_400_000_000
    download.finish(
        Download.Outcome.MISMATCH, records=12_345_678, detail="Zuora counted 12,345,680."
    )
    AuditEvent.record(
        AuditEvent.Kind.CONNECTION_TEST_FAILED,
        user=user,
        tenant=tenant,
        target=f"job {job_id} file {file_id}",
        detail="Zuora at https://rest.zuora.com rejected these credentials, but these "
        "credentials work at https://rest.na.zuora.com (US Production Cloud 1): change the "
        "tenant's environment to US Production Cloud 1. The secret is fine. Zuora track ID "
        "aquadash-0f3b2c9e8d7a6b5c4d3e2f1a0b9c8d7e, request ID "
        "5d3c2b1a-9f8e-7d6c-5b4a-3f2e1d0c9b8a",
    )
    watch = Watch.objects.create(
        tenant=tenant, job_id=job_id, user=user, job_name=LONG_JOB_NAME,
        link=f"https://aquadash.acme-emea.example/t/acme-emea/jobs/{job_id}/",
        expires_at=now + timedelta(days=1), next_check_at=now, ended_at=now,
        end=Watch.End.EXPIRED, job_status="executing",
    )  # fmt: skip
    Delivery.objects.create(
        watch=watch, channel=Delivery.Channel.WEBHOOK, recipient="hooks.slack.com",
        status=Delivery.Status.FAILED, attempts=5, sent_at=None,
        last_error="The chat webhook at hooks.slack.com answered HTTP 404 (no_service): the "
        "webhook was probably removed from the channel. Ask whoever runs the channel for a new "
        "one and enter it under Admin → Tenants → Notifications.",
    )  # fmt: skip
    Delivery.objects.create(
        watch=watch, channel=Delivery.Channel.EMAIL, recipient=user.email, attempts=1,
        status=Delivery.Status.SENT, sent_at=now,
    )  # fmt: skip
    return tenant
