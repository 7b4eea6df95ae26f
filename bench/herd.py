"""Does a crowd at one running job cost Zuora at most one call per poll interval, with no errors?

--viewers poll a running job's page fragment (as htmx does, every --poll-seconds) and
--refreshers keep pressing "Refresh from Zuora", all at once, for --seconds, against each
configuration in turn, in the same run:

  coalesced    gunicorn (2 gthread workers of 8 threads, as `make serve`) on PostgreSQL and
               Redis: what production serves
  uncoalesced  the same with AQUADASH_COALESCE=0, so that every poll asks Zuora: the baseline
  development  what `make run` serves: Django's development server, SQLite, no Redis

For each it prints requests made, errors (target 0), Zuora calls per poll interval (target
<= 1.0), poll latency percentiles and the CPU that aquadash and this client used.

    .venv/bin/python bench/herd.py                 # the issue's 200 viewers for 60 s, on and off
    .venv/bin/python bench/herd.py --configurations development,coalesced \\
        --viewers 50 --refreshers 40 --seconds 30  # docs/benchmarks/herd.md

The client is one Python process of threads, one keep-alive requests.Session each; its CPU is
printed so that you can tell when it, not the server, is the limit (one core is all it gets).
Everything runs on loopback; PostgreSQL databases are made for the run and dropped after.
"""

import argparse
import os
import random
import statistics
import threading
import time

import requests
from harness import (
    POSTGRES,
    REDIS,
    Check,
    Servers,
    cpu_seconds,
    development,
    machine_cpu_seconds,
    print_checks,
    production,
    signed_in,
)

RUNNING_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000102"  # the simulator's job that keeps running
CONFIGURATIONS = ("coalesced", "uncoalesced", "development")


def crowd(servers: Servers, args: argparse.Namespace) -> dict:
    """Run the crowd against one server; returns what it saw."""
    template = signed_in(servers.base, servers.password)
    url = f"{servers.base}/t/bench/jobs/{RUNNING_JOB_ID}/"
    template.get(url, timeout=30).raise_for_status()  # the first lookup starts the job
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds

    def person(params: dict, headers: dict) -> None:
        session = requests.Session()
        session.cookies.update(template.cookies)
        time.sleep(random.uniform(0, args.poll_seconds))  # people do not arrive in step
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = session.get(url, params=params, headers=headers, timeout=30)
                problem = "" if response.status_code == 200 else f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:120]}"
            with lock:
                times.append(time.perf_counter() - started)
                if problem:
                    errors.append(problem)
            time.sleep(max(0.0, args.poll_seconds - (time.perf_counter() - started)))

    viewer, refresher = ({}, {"HX-Request": "true"}), ({"refresh": "1"}, {})
    people = [threading.Thread(target=person, args=viewer) for _ in range(args.viewers)]
    people += [threading.Thread(target=person, args=refresher) for _ in range(args.refreshers)]
    calls_before = zuora_job_calls(servers.simulator)

    def cpu() -> dict[str, float]:
        return {
            "aquadash": cpu_seconds(servers.aquadash.pid),
            "simulator": cpu_seconds(servers.zuora.pid),
            "client": time.process_time(),
            "machine": machine_cpu_seconds(),
        }

    cpu_before, began = cpu(), time.monotonic()
    for thread in people:
        thread.start()
    for thread in people:
        thread.join()
    elapsed = time.monotonic() - began
    return {
        "times": sorted(times),
        "errors": errors,
        "calls": zuora_job_calls(servers.simulator) - calls_before,
        "intervals": elapsed / args.poll_seconds,
        "due": len(people) * args.seconds / args.poll_seconds,
        "cores": {name: (used - cpu_before[name]) / elapsed for name, used in cpu().items()},
    }


def zuora_job_calls(simulator: str) -> int:
    counts = requests.get(f"{simulator}/_simulator/requests", timeout=10).json()
    return counts["jobs"].get(RUNNING_JOB_ID, 0)


def run(name: str, args: argparse.Namespace) -> dict:
    common = {"AQUADASH_POLL_SECONDS": str(args.poll_seconds), "batch_seconds": 600}
    if name == "development":
        servers = development(**common)
    else:
        coalesce = "1" if name == "coalesced" else "0"
        servers = production(
            "herd", postgres=args.postgres, redis_url=args.redis, AQUADASH_COALESCE=coalesce,
            **common,
        )  # fmt: skip
    # Long batches: the job is still running when the crowd leaves.
    with servers as running:
        return crowd(running, args)


def milliseconds(seen: dict) -> str:
    quantiles = statistics.quantiles(seen["times"], n=100)
    return " / ".join(f"{quantiles[n] * 1000:.0f}" for n in (49, 94, 98))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--refreshers", type=int, default=0)
    parser.add_argument("--poll-seconds", type=int, default=2)
    parser.add_argument("--configurations", default="coalesced,uncoalesced")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    args = parser.parse_args()
    names = args.configurations.split(",")
    if unknown := set(names) - set(CONFIGURATIONS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {CONFIGURATIONS}")

    seen = {name: run(name, args) for name in names}

    print(
        f"## Herd: {args.viewers} viewers polling and {args.refreshers} pressing Refresh at one "
        f"running job, {args.seconds} s, poll interval {args.poll_seconds} s\n"
    )
    print(
        "| configuration | requests (of due) | errors | Zuora calls | per interval | "
        "p50 / p95 / p99 ms | CPU cores: aquadash, simulator, client, whole machine |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in seen.items():
        print(
            f"| {name} | {len(row['times']):,} ({len(row['times']) / row['due']:.0%}) | "
            f"{len(row['errors'])} | {row['calls']:,} | {row['calls'] / row['intervals']:.2f} | "
            f"{milliseconds(row)} | {', '.join(f'{n:.2f}' for n in row['cores'].values())} |"
        )
        if row["errors"]:
            print(f"|  | errors: {sorted(set(row['errors']))[:5]} | | | | | |")
    print(
        "\ncoalesced: gunicorn (2 gthread workers, 8 threads each), PostgreSQL and Redis; "
        "uncoalesced: the same with AQUADASH_COALESCE=0, every poll asks Zuora; development: "
        '`make run` (development server, SQLite, no Redis). "of due": requests made of those '
        "the crowd meant to make, below 100% when answers take longer than a poll interval. The "
        "client is one Python process: near 1.0 CPU core it, not the server, would set the "
        f"pace. The whole machine has {os.cpu_count()} cores, shared with PostgreSQL, Redis and "
        "anything else running on it; near that, every figure is CPU-bound.\n"
    )
    if "coalesced" in seen:
        print_checks(checks(seen))


def checks(seen: dict) -> list[Check]:
    on, off = seen["coalesced"], seen.get("uncoalesced")
    return [
        Check(
            "Herd: Zuora calls per poll interval",
            f"{on['calls'] / on['intervals']:.2f}",
            f"{off['calls'] / off['intervals']:.2f} uncoalesced" if off else "not run",
            "<= 1.0",
            on["calls"] / on["intervals"] <= 1.0,
        ),
        Check(
            "Herd: errors",
            f"{len(on['errors'])}",
            f"{len(off['errors'])} uncoalesced" if off else "not run",
            "0",
            not on["errors"],
        ),
        Check(
            "Herd: poll latency p50 / p95 / p99, ms",
            milliseconds(on),
            f"{milliseconds(off)} uncoalesced" if off else "not run",
            "",
            None,
        ),
    ]


if __name__ == "__main__":
    main()
