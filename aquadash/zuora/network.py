"""Where aquadash may connect: Zuora's documented hosts (and ZUORA_EXTRA_HOSTS) by base URL,
only at public addresses for Zuora's own names, through a session that ignores proxy variables
and .netrc and keeps no cookies; or through the one proxy an admin named (ZUORA_PROXY)."""

import functools
import http.cookiejar
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.util.connection

from aquadash.zuora.errors import HostNotAllowed

# Zuora's documented REST environments: key -> (label, base URL), from the API reference's
# introduction, https://developer.zuora.com/v1-api-reference/introduction/.
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "us-prod-cloud1": ("US Production (Cloud 1)", "https://rest.na.zuora.com"),
    "us-prod-cloud2": ("US Production (Cloud 2)", "https://rest.zuora.com"),
    "us-sandbox-cloud1": ("US API Sandbox (Cloud 1)", "https://rest.sandbox.na.zuora.com"),
    "us-sandbox-cloud2": ("US API Sandbox (Cloud 2)", "https://rest.apisandbox.zuora.com"),
    "us-dev-sandbox": ("US Developer & Central Sandbox", "https://rest.test.zuora.com"),
    "eu-prod": ("EU Production", "https://rest.eu.zuora.com"),
    "eu-sandbox": ("EU API Sandbox", "https://rest.sandbox.eu.zuora.com"),
    "eu-dev-sandbox": ("EU Developer & Central Sandbox", "https://rest.test.eu.zuora.com"),
    "ap-prod": ("APAC Production", "https://rest.ap.zuora.com"),
    "ap-dev-sandbox": ("APAC Developer & Central Sandbox", "https://rest.test.ap.zuora.com"),
}
ZUORA_HOSTS = frozenset(urlsplit(url).hostname for _, url in ENVIRONMENTS.values())


def other_clouds(base_url: str) -> list[tuple[str, str]]:
    """(label, base URL) of the environment's other documented hosts. US Production and US API
    Sandbox each have two, Cloud 1 and Cloud 2; a tenant lives on one, and the other answers
    its credentials with 401."""

    def family(key: str) -> str:
        return key.rpartition("-cloud")[0]

    here = [key for key, (_, url) in ENVIRONMENTS.items() if url == base_url and family(key)]
    return [
        (label, url)
        for key, (label, url) in ENVIRONMENTS.items()
        if url != base_url and any(family(key) == family(each) for each in here)
    ]


class PrivateAddress(urllib3.exceptions.NewConnectionError):
    """A documented Zuora host name resolved to an address that is not on the internet."""


def public_address(host: str, port: int) -> str:
    """The address to connect to for one of Zuora's hosts, if every address DNS gives is public.

    Checked when connecting, and then connected to, so a name re-pointed at an internal
    address after the allow-list check (DNS rebinding) is still refused.
    """
    addresses = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise OSError(f"{host} resolved to {address}, which is not a public address")
        addresses.append(sockaddr[0])
    return addresses[0]


class PublicOnlyConnection(urllib3.connection.HTTPSConnection):
    def must_be_public(self, host: str) -> bool:
        """Zuora's own hosts must resolve to public addresses; ZUORA_EXTRA_HOSTS are the
        operator's choice."""
        return host in ZUORA_HOSTS

    def _new_conn(self) -> socket.socket:
        if not self.must_be_public(self.host.lower()):
            return super()._new_conn()
        try:
            address = public_address(self.host, self.port)
        except socket.gaierror as exc:  # no address at all: unreachable, not tampered with
            raise urllib3.exceptions.NameResolutionError(self.host, self, exc) from exc
        except OSError as exc:
            raise PrivateAddress(self, str(exc)) from exc
        try:  # TLS still verifies the certificate against self.host
            return urllib3.util.connection.create_connection(
                (address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(self, f"{self.host} timed out") from exc
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(self, str(exc)) from exc


class _PublicOnlyAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, connection_class: type[PublicOnlyConnection]) -> None:
        self.pool_class = type("PublicOnlyPool", (urllib3.HTTPSConnectionPool,), {})
        self.pool_class.ConnectionCls = connection_class
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": self.pool_class,
        }


def new_session(
    connection_class: type[PublicOnlyConnection] = PublicOnlyConnection, *, proxy: str = ""
) -> requests.Session:
    """A session that ignores proxy variables and .netrc, keeps no cookies, and connects to the
    hosts that `connection_class` names (by default Zuora's) only at public addresses; calls
    pass allow_redirects=False.

    With `proxy`, https:// requests are tunnelled through it with CONNECT instead: the proxy
    (which an admin named, so it may be private) resolves Zuora's name, so the public-address
    check cannot happen here. TLS is still end to end, verified against Zuora's host name.
    """
    session = requests.Session()
    session.trust_env = False
    # One session serves every tenant: a cookie one tenant's answer set (POST /v1/connections
    # answers with a session cookie) must never ride along on another tenant's request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.mount("https://", _PublicOnlyAdapter(connection_class))
    if proxy:
        session.proxies = {"https": proxy}
    return session


SESSION = new_session()


@functools.cache
def proxied_session(proxy: str) -> requests.Session:
    """The one session for calls through `proxy` (SESSION when there is none)."""
    return new_session(proxy=proxy) if proxy else SESSION


def check_base_url(url: str, *, extra_hosts: frozenset[tuple[str, int]] = frozenset()) -> str:
    """Return the normalised base URL, or raise HostNotAllowed.

    Only Zuora's documented REST hosts over HTTPS on the default port are accepted, plus the
    exact host:port pairs configured in ZUORA_EXTRA_HOSTS (the simulator, tests). Matching is
    exact, so look-alike, numeric and user@ forms never pass.
    """
    refused = HostNotAllowed(
        "That base URL is not an allowed Zuora REST host. Choose a Zuora environment; other "
        "hosts must be listed in ZUORA_EXTRA_HOSTS by whoever runs aquadash."
    )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        raise refused from None
    host = (parts.hostname or "").lower()
    if (
        parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or parts.path not in ("", "/")
        or parts.scheme not in ("http", "https")
    ):
        raise refused
    if parts.scheme == "https" and host in ZUORA_HOSTS and port in (None, 443):
        return f"https://{host}"
    default_port = 443 if parts.scheme == "https" else 80
    if (host, port or default_port) in extra_hosts:
        netloc = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{netloc}:{port or default_port}"
    raise refused
