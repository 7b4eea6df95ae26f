"""Does a crowd at one running job cost Zuora at most one call per poll interval, with no errors?

50 viewers poll a running job's page fragment and 40 people keep pressing "Refresh from
Zuora", all at once, for --seconds, against two configurations in the same run:

  default     what `make run` serves: Django's development server, SQLite, no Redis
  production  gunicorn (2 gthread workers) on PostgreSQL and Redis (this machine's, or
              --postgres and --redis)

For each it prints requests made, errors (target 0), Zuora calls per poll interval (target
<= 1.0) and response times.

    .venv/bin/python bench/herd.py                 # 30 seconds each
    .venv/bin/python bench/herd.py --seconds 60 --viewers 100 --refreshers 40

Everything runs on loopback; the production run uses its own database, aquadash_bench,
dropped and made again at the start.
"""

import argparse
import random
import statistics
import threading
import time

import psycopg
import requests
from harness import (
    MANAGE,
    environment,
    free_port,
    gunicorn,
    prepare,
    processes,
    signed_in,
    start,
    wait_for,
)

RUNNING_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000102"  # the simulator's job that keeps running
POLL_SECONDS = 2


def crowd(base: str, password: str, viewers: int, refreshers: int, seconds: float) -> dict:
    """Run the crowd against one server; returns what it saw."""
    template = signed_in(base, password)
    url = f"{base}/t/bench/jobs/{RUNNING_JOB_ID}/"
    template.get(url, timeout=30).raise_for_status()  # the first lookup starts the job
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def person(params: dict, headers: dict) -> None:
        session = requests.Session()
        session.cookies.update(template.cookies)
        time.sleep(random.uniform(0, POLL_SECONDS))  # people do not arrive in step
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
            time.sleep(max(0.0, POLL_SECONDS - (time.perf_counter() - started)))

    people = [
        threading.Thread(target=person, args=({}, {"HX-Request": "true"})) for _ in range(viewers)
    ] + [threading.Thread(target=person, args=({"refresh": "1"}, {})) for _ in range(refreshers)]
    for thread in people:
        thread.start()
    for thread in people:
        thread.join()
    return {"times": times, "errors": errors}


def zuora_job_calls(simulator: str) -> int:
    counts = requests.get(f"{simulator}/_simulator/requests", timeout=10).json()
    return counts["jobs"].get(RUNNING_JOB_ID, 0)


def fresh_database(url: str) -> str:
    """postgres://…/aquadash_bench, made empty."""
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS aquadash_bench")
        connection.execute("CREATE DATABASE aquadash_bench")
    return url.rsplit("/", 1)[0] + "/aquadash_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--refreshers", type=int, default=40)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    rows = []
    for name in ("default", "production"):
        sim_port, port = free_port(), free_port()
        common = {"AQUADASH_POLL_SECONDS": str(POLL_SECONDS)}
        if name == "default":  # as `make run` has it
            env = environment(sim_port, DEBUG="1", **common)
            server = [*MANAGE, "runserver", "--noreload", f"127.0.0.1:{port}"]
        else:
            env = environment(
                sim_port,
                DATABASE_URL=fresh_database(args.postgres),
                REDIS_URL=args.redis,
                **common,
            )
            server = gunicorn(port)
        with processes() as started:
            password = prepare(env, sim_port)
            # Long batches: the job is still running when the crowd leaves.
            start(
                started,
                [*MANAGE, "simulate_zuora", "--port", str(sim_port), "--batch-seconds", "600"],
                env,
            )
            start(started, server, env)
            simulator, base = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
            wait_for(simulator + "/_simulator/catalogue")
            wait_for(base + "/health/")
            before = zuora_job_calls(simulator)
            began = time.monotonic()
            seen = crowd(base, password, args.viewers, args.refreshers, args.seconds)
            elapsed = time.monotonic() - began
            calls = zuora_job_calls(simulator) - before
        times = sorted(seen["times"])
        quantiles = statistics.quantiles(times, n=100)
        rows.append(
            f"| {name} | {len(times):,} | {len(seen['errors'])} | "
            f"{calls / (elapsed / POLL_SECONDS):.2f} | {quantiles[49] * 1000:.0f} | "
            f"{quantiles[94] * 1000:.0f} | {quantiles[98] * 1000:.0f} |"
        )
        if seen["errors"]:
            rows.append(f"|  | errors: {sorted(set(seen['errors']))} | | | | | |")

    print(
        f"## A crowd at one running job: {args.viewers} viewers polling and {args.refreshers} "
        f"pressing Refresh, {args.seconds:.0f} s, poll interval {POLL_SECONDS} s\n"
    )
    print(
        "| configuration | requests | errors (target 0) | Zuora calls per interval "
        "(target <= 1.0) | p50 ms | p95 ms | p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        "\ndefault: `make run` (development server, SQLite, no Redis); production: gunicorn with "
        "2 gthread workers, PostgreSQL and Redis. All on one 2-core machine with the "
        "simulator and this client."
    )


if __name__ == "__main__":
    main()
