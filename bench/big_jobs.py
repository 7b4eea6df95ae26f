"""Does a job page grow no faster than its job, and stay under 2 MB at 1,000 batches?

Serves aquadash as `make serve` does on PostgreSQL and Redis, has the simulator make completed
jobs of 10, 100 and 1,000 batches of 100 segments each (past Zuora's own limit of 50 batches a
job, as a hostile or future answer might be), opens each job's page once (aquadash asks Zuora,
reads and stores the answer) and then --repeat times more from storage, one request at a time.

It prints the page's HTML bytes, its time from storage (fastest and median; the sizes take
turns), the first lookup's time, the stored answer's size, and the growth from one size to the
next beside the growth in batches (target: no more than linear; the 1,000-batch page under
2 MB). The job page shows 100 batches a page, so from 100 batches on it serves the first 100 and
a pager: the bytes are what it serves.

    .venv/bin/python bench/big_jobs.py
    .venv/bin/python bench/big_jobs.py --repeat 20
"""

import argparse
import json
import statistics
import time

import requests
from harness import POSTGRES, REDIS, Check, print_checks, production, signed_in

SIZES = (10, 100, 1_000)
WARM_UP_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000101"  # the simulator's month-end extract
SEGMENTS = 100
PAGE_LIMIT = 2_000_000  # bytes


def timed_get(session: requests.Session, url: str) -> tuple[bytes, float]:
    started = time.perf_counter()
    response = session.get(url, timeout=120)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return response.content, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    args = parser.parse_args()

    urls, first, times, rows = {}, {}, {n: [] for n in SIZES}, {}
    with production("big_jobs", postgres=args.postgres, redis_url=args.redis) as running:
        session = signed_in(running.base, running.password)
        for _ in range(10):  # both workers past their first request: templates, connections
            timed_get(session, f"{running.base}/t/bench/jobs/{WARM_UP_JOB_ID}/")
        for batches in SIZES:
            spec = {"records": 1_000_000, "segments": SEGMENTS, "batches": batches}
            made = requests.post(f"{running.simulator}/_simulator/jobs", json=spec, timeout=60)
            urls[batches] = f"{running.base}/t/bench/jobs/{made.json()['id']}/"
            _, first[batches] = timed_get(session, urls[batches])  # Zuora asked, answer stored
        for round_ in range(args.repeat):  # in turns, so that noise falls on every size alike
            for batches in SIZES if round_ % 2 == 0 else reversed(SIZES):
                html, elapsed = timed_get(session, urls[batches])
                times[batches].append(elapsed)
        for batches in SIZES:
            stored, _ = timed_get(session, urls[batches] + "raw.json")
            ids = [batch["batchId"].encode() for batch in json.loads(stored)["batches"]]
            html, _ = timed_get(session, urls[batches])
            rows[batches] = {
                "bytes": len(html),
                "time": min(times[batches]),
                "median": statistics.median(times[batches]),
                "first": first[batches],
                "stored": len(stored),
                "shown": sum(batch_id in html for batch_id in ids),
            }

    print(
        f"## Big jobs: pages of jobs with 10, 100 and 1,000 batches of {SEGMENTS} segments, "
        f"{args.repeat} views each from storage\n"
    )
    print(
        "| batches | shown on the page | HTML bytes | from storage, fastest ms | median ms | "
        "first lookup ms | stored answer (raw.json) bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for batches, row in rows.items():
        print(
            f"| {batches:,} | {row['shown']:,} | {row['bytes']:,} | {row['time'] * 1000:.0f} | "
            f"{row['median'] * 1000:.0f} | {row['first'] * 1000:.0f} | {row['stored']:,} |"
        )
    print(
        "\nThe job page paginates batches, so the 1,000-batch page serves its first page and a "
        'pager ("shown": batch IDs found in the HTML); every view still reads and parses the '
        "whole stored answer. Times are measured by the client over loopback, one request at "
        "a time, the sizes in turns, on gunicorn with PostgreSQL and Redis; growth is judged on "
        "the fastest view of each, the one least disturbed by the rest of the machine. The "
        "first lookup asks Zuora (the simulator), reads its answer and stores it.\n"
    )
    small, middle, large = (rows[n] for n in SIZES)
    growth = {
        what: (middle[what] / small[what], large[what] / middle[what]) for what in ("bytes", "time")
    }
    print_checks(
        [
            Check(
                "Big jobs: HTML bytes growth, 10 → 100 → 1,000 batches",
                "×{:.1f}, ×{:.1f}".format(*growth["bytes"]),
                "batches ×10, ×10",
                "<= linear",
                max(growth["bytes"]) <= 10,
            ),
            Check(
                "Big jobs: page time growth, 10 → 100 → 1,000 batches",
                "×{:.1f}, ×{:.1f}".format(*growth["time"]),
                f"batches ×10, ×10 (fastest {small['time'] * 1000:.0f} ms at 10 batches)",
                "<= linear",
                max(growth["time"]) <= 10,
            ),
            Check(
                "Big jobs: HTML of the 1,000-batch page",
                f"{large['bytes'] / 1e6:.2f} MB",
                f"{small['bytes'] / 1e3:.0f} kB at 10 batches",
                "< 2 MB",
                large["bytes"] < PAGE_LIMIT,
            ),
        ]
    )


if __name__ == "__main__":
    main()
