"""ZUORA_PROXY: calls to Zuora tunnelled through a real CONNECT proxy (proxy.py, run on
loopback) to the simulator served over https, with the host allow-list and TLS verification
still applied to Zuora's host, not to the proxy."""

import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from pytest_django.fixtures import Settings

from aquadash import simulator as sim
from aquadash import zuora
from tests.conftest import FakeClock, wait_until
from tests.test_zuora import EXAMPLE_FILE_JOB, connect


@dataclass(frozen=True)
class Proxy:
    url: str
    log: Path

    def connects(self) -> list[str]:
        """The CONNECT lines of the proxy's access log: one per tunnel it opened."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if " - CONNECT " in line]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """proxy.py, a maintained HTTP proxy, in its own process on an ephemeral loopback port."""
    port_file, log = tmp_path / "proxy.port", tmp_path / "proxy.log"
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"]
        + ["--port-file", str(port_file), "--log-file", str(log)]
        + ["--num-workers", "1", "--num-acceptors", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 30)
        yield Proxy(url=f"http://127.0.0.1:{port_file.read_text().strip()}", log=log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def https_simulator(ca: trustme.CA, clock: FakeClock, name: str = "127.0.0.1"):
    """The simulator over TLS, its certificate issued to `name` by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return sim.serve(sim.Simulator(clock=clock), tls=context)


def through(proxy: Proxy, ca: trustme.CA, tmp_path: Path, running: sim.Running, **overrides):
    """A connection to `running` through `proxy`, trusting `ca` (as Zuora's CA is trusted)."""
    session = zuora.new_session(proxy=proxy.url)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    session.verify = str(tmp_path / "ca.pem")
    return connect(SimpleNamespace(url=running.url), session=session, **overrides)


def test_calls_to_zuora_are_tunnelled_through_the_proxy(proxy, ca, sim_clock, tmp_path):
    with https_simulator(ca, sim_clock) as running:
        conn = through(proxy, ca, tmp_path, running)

        job = zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert job.id == EXAMPLE_FILE_JOB
    assert any(f"CONNECT 127.0.0.1:{running.port} " in line for line in proxy.connects())


def test_tls_through_the_proxy_is_verified_against_zuoras_host_name(proxy, ca, sim_clock, tmp_path):
    with https_simulator(ca, sim_clock, name="not-zuora.test") as running:
        conn = through(proxy, ca, tmp_path, running)

        with pytest.raises(zuora.ZuoraUnavailable):
            zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert proxy.connects()  # the tunnel opened; the certificate was refused inside it


def test_a_host_not_allowed_is_refused_with_the_proxy_on(proxy, ca, sim_clock, tmp_path):
    with https_simulator(ca, sim_clock) as running:
        # Basic auth: no token call, whose own check would hide this one's.
        conn = through(proxy, ca, tmp_path, running, base_url="https://evil.test", method="basic")

        with pytest.raises(zuora.HostNotAllowed):
            zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert proxy.connects() == []


def test_a_proxy_that_does_not_answer_is_named_and_has_no_track_id(ca, sim_clock, tmp_path):
    unreachable = Proxy(url="http://127.0.0.1:1", log=tmp_path / "none.log")
    with https_simulator(ca, sim_clock) as running:
        conn = through(unreachable, ca, tmp_path, running)

        with pytest.raises(zuora.ZuoraUnavailable) as caught:
            zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert "through its outbound proxy (ZUORA_PROXY)" in caught.value.message
    assert caught.value.track_id == ""


@pytest.fixture
def proxied(settings: Settings, proxy: Proxy, ca: trustme.CA, tmp_path: Path) -> Iterator[Proxy]:
    """ZUORA_PROXY set to `proxy`, its session trusting `ca`."""
    settings.ZUORA_PROXY = proxy.url
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    zuora.proxied_session(proxy.url).verify = str(tmp_path / "ca.pem")
    yield proxy
    zuora.proxied_session.cache_clear()


def test_a_tenants_calls_go_through_zuora_proxy(proxied, ca, sim_clock, make_tenant, settings):
    with https_simulator(ca, sim_clock) as running:
        settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {(running.host, running.port)}
        tenant = make_tenant(
            environment="custom",
            base_url=running.url,
            identity=sim.DEMO_CLIENT_ID,
            secret=sim.DEMO_CLIENT_SECRET,
        )

        ok, message = tenant.check_connection()

    assert ok, message
    assert any(f"CONNECT 127.0.0.1:{running.port} " in line for line in proxied.connects())


def test_without_zuora_proxy_no_proxy_is_used(make_tenant, settings):
    settings.ZUORA_PROXY = ""
    session = make_tenant().zuora_connection().session

    assert session is zuora.SESSION and session.proxies == {}
