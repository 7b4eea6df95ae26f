"""How many compressed bytes does a first visit to a job page cost?

Serves aquadash as `make serve` does (DEBUG off, whitenoise serving the compressed static files
that collectstatic made) on PostgreSQL and Redis, opens a stored completed job's page (the
simulator's 4-batch "Month-end extract") and fetches what a browser with an empty cache then
fetches: every stylesheet, script and icon the page links, and any fragment it loads at once
(`hx-trigger="load"`). For each it prints the bytes as served, asking for gzip (and brotli when
the `brotli` module is installed), and at gzip -9; the total at the best of those is held to
the target (< 30 kB), next to the uncompressed total.

aquadash sends HTML uncompressed (compressing pages that carry CSRF tokens invites BREACH, so
Django leaves it off); the HTML's share is counted at gzip -9, as a compressing proxy sends it.

    .venv/bin/python bench/page_weight.py
"""

import argparse
import gzip
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests
from harness import POSTGRES, REDIS, Check, print_checks, production, signed_in

try:
    import brotli  # optional: whitenoise makes .br files only when it is installed
except ImportError:
    brotli = None

JOB_ID = "2c92c0f96d8a3b1e016d8a0000000101"  # the simulator's month-end extract
TARGET = 30_000  # bytes
HTMX = {"HX-Request": "true"}


class Subresources(HTMLParser):
    """What a browser fetches after the HTML: (what, URL, headers)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        rel = attributes.get("rel", "").split()
        if tag == "link" and {"stylesheet", "icon"} & set(rel):
            self.found.append((" ".join(rel), attributes["href"], {}))
        elif tag == "script" and attributes.get("src"):
            self.found.append(("script", attributes["src"], {}))
        elif "load" in attributes.get("hx-trigger", "").split() and attributes.get("hx-get"):
            self.found.append(("fragment loaded with the page", attributes["hx-get"], HTMX))


def fetch(session: requests.Session, url: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """The bytes as they came over the wire, and as they read once decoded."""
    accept = "br, gzip" if brotli else "gzip"
    with session.get(
        url, headers={"Accept-Encoding": accept, **headers}, stream=True, timeout=30
    ) as response:
        response.raise_for_status()
        wire = response.raw.read(decode_content=False)
        encoding = response.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        return wire, gzip.decompress(wire)
    if encoding == "br":
        return wire, brotli.decompress(wire)
    return wire, wire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    args = parser.parse_args()

    rows = []
    with production("page_weight", postgres=args.postgres, redis_url=args.redis) as running:
        session = signed_in(running.base, running.password)
        page = f"{running.base}/t/bench/jobs/{JOB_ID}/"
        session.get(page, timeout=30).raise_for_status()  # stored: later visits are alike
        wire, html = fetch(session, page, {})
        rows.append(("job page HTML", "/t/bench/jobs/…/", wire, html))
        found = Subresources()
        found.feed(html.decode())
        for what, url, headers in found.found:
            wire, body = fetch(session, urljoin(page, url), headers)
            rows.append((what, url.rsplit("/", 1)[-1] or url.replace(JOB_ID, "…"), wire, body))

    print("## Page weight: a first visit to a job page, empty cache\n")
    print("| what | file | bytes | as served | gzip -9 | counted |")
    print("|---|---|---:|---:|---:|---:|")
    total = plain = served = 0
    for what, name, wire, body in rows:
        smallest = min(len(wire), len(gzip.compress(body, 9)))
        total, plain, served = total + smallest, plain + len(body), served + len(wire)
        print(
            f"| {what} | `{name}` | {len(body):,} | {len(wire):,} | "
            f"{len(gzip.compress(body, 9)):,} | {smallest:,} |"
        )
    print(f"| **total** | | {plain:,} | {served:,} | | **{total:,}** |")
    print(
        '\n"as served": the bytes aquadash sent for a request accepting gzip'
        f"{' and brotli' if brotli else ' (brotli is not installed, so none is made)'}; "
        '"counted": the fewer of those and gzip -9, since aquadash sends HTML uncompressed and '
        "a compressing proxy in front of it would send about gzip -9.\n"
    )
    print_checks(
        [
            Check(
                "Page weight: first visit to a job page, compressed",
                f"{total / 1000:.1f} kB",
                f"{plain / 1000:.1f} kB uncompressed, {served / 1000:.1f} kB as served",
                f"< {TARGET / 1000:.0f} kB",
                total < TARGET,
            )
        ]
    )


if __name__ == "__main__":
    main()
