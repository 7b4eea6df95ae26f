"""Can one worker watch 1,000 running jobs: at most one Zuora call per job per poll interval,
and each watcher told within one interval (plus 2 s) of the job's end?

Starts the simulator (batches of --batch-seconds) and one `manage.py db_worker` on PostgreSQL
and Redis, adds --tenants tenants on the simulator, submits --jobs jobs through the AQuA API
spread over --spread seconds (each one query, so it ends 2 × --batch-seconds after it was
submitted), watches every one of them, and waits until every watch has ended. Then it prints:

  Zuora calls per job per interval   the job GETs the simulator served for each job, over the
                                     intervals it was watched (target <= 1; the pages' own
                                     budget is the baseline)
  end to notification                from the job's end in the simulator to its e-mail marked
                                     sent, p50 / p95 / max (target: p95 within one interval
                                     plus 2 s)
  worker memory                      the worker's peak resident memory, beside its memory once
                                     started and idle
  rounds per interval                the worker's rounds (check_watches tasks) over the run, per
                                     poll interval (target <= 1.2), and the task rows created

E-mails go to Django's dummy backend: the time measured is the worker's, not a mail server's.

    .venv/bin/python bench/watch.py                        # 1,000 jobs across 10 tenants
    .venv/bin/python bench/watch.py --jobs 200 --spread 10 --batch-seconds 15
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from harness import (
    MANAGE,
    ROOT,
    Check,
    cpu_seconds,
    machine_cpu_seconds,
    print_checks,
    production,
    start,
)

sys.path.insert(0, str(ROOT))  # the simulator's demo client and its query, from aquadash itself
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET  # noqa: E402
from aquadash.simulator.catalogue import ACCOUNTS  # noqa: E402

SETUP = """
import json, sys
from django.contrib.auth.models import User
from aquadash.models import Tenant
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
base = Tenant.objects.get(slug="bench")
for n in range({tenants}):
    t = Tenant(slug=f"watch-{{n}}", name=f"Watch {{n}}", environment="custom",
               base_url=base.base_url, identity=DEMO_CLIENT_ID)
    t.set_secret(DEMO_CLIENT_SECRET); t.full_clean(); t.save()
User.objects.filter(username="bench").update(email="bench@example.com")
"""

WATCH = """
import json
from django.contrib.auth.models import User
from aquadash import watching
from aquadash.models import Tenant
user = User.objects.get(username="bench")
tenants = {{t.slug: t for t in Tenant.objects.filter(slug__startswith="watch-")}}
for slug, job_id in json.load(open({path!r})):
    watching.watch(tenants[slug], job_id, user, link=f"http://127.0.0.1/t/{{slug}}/jobs/{{job_id}}/")
"""


def submit_jobs(simulator: str, count: int, spread: float) -> list[tuple[str, float]]:
    """Submit `count` one-query jobs evenly over `spread` seconds; each job ID with the time it
    was submitted."""
    session = requests.Session()
    token = session.post(
        f"{simulator}/oauth/token",
        data={
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "grant_type": "client_credentials",
        },
        timeout=10,
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    jobs, began = [], time.time()
    for n in range(count):
        time.sleep(max(0.0, began + n * spread / count - time.time()))
        body = {
            "format": "csv",
            "version": "1.1",
            "name": f"Watched export {n}",
            "encrypted": "none",
            "dateTimeUtc": "true",
            "queries": [{"name": "Accounts", "query": ACCOUNTS, "type": "zoqlexport"}],
        }
        submitted = time.time()
        answer = session.post(f"{simulator}/v1/batch-query/", json=body, timeout=10)
        answer.raise_for_status()
        jobs.append((answer.json()["id"], submitted))
    return jobs


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--spread", type=float, default=30.0, help="seconds to submit them in")
    parser.add_argument("--batch-seconds", type=float, default=30.0)
    parser.add_argument("--poll-seconds", type=int, default=5)
    args = parser.parse_args()

    overrides = {
        "AQUADASH_POLL_SECONDS": str(args.poll_seconds),
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    with production(
        "watch", workers=1, threads=2, batch_seconds=args.batch_seconds, **overrides
    ) as servers:
        env = servers.env
        subprocess.run(
            [*MANAGE, "shell", "-c", SETUP.format(tenants=args.tenants)],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        worker = start([], [*MANAGE, "db_worker", "--no-reload", "--no-startup-delay"], env)
        try:
            time.sleep(3)
            idle_kb = memory_kb(worker.pid, "VmRSS")
            began = time.monotonic()
            cpu_began = [cpu_seconds(worker.pid), cpu_seconds(servers.zuora.pid)]
            machine_began = machine_cpu_seconds()
            jobs = submit_jobs(servers.simulator, args.jobs, args.spread)
            submitted_in = time.monotonic() - began
            placed = [(f"watch-{n % args.tenants}", job_id) for n, (job_id, _) in enumerate(jobs)]
            listing = Path(env["DATABASE_URL"].rsplit("/", 1)[1] + ".json")
            path = Path("/tmp") / listing
            path.write_text(json.dumps(placed))
            subprocess.run(
                [*MANAGE, "shell", "-c", WATCH.format(path=str(path))],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            watched_in = time.monotonic() - began - submitted_in
            print(
                f"Submitted {args.jobs} jobs in {submitted_in:.0f} s and watched them all "
                f"{watched_in:.0f} s later; waiting for them to end…",
                flush=True,
            )
            deadline = time.monotonic() + args.spread + 2 * args.batch_seconds + 120
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
                while time.monotonic() < deadline:
                    pending = db.execute(
                        "SELECT count(*) FROM aquadash_watch WHERE ended_at IS NULL"
                    ).fetchone()[0]
                    unsent = db.execute(
                        "SELECT count(*) FROM aquadash_delivery WHERE status <> 'sent'"
                    ).fetchone()[0]
                    if pending == 0 and unsent == 0:
                        break
                    time.sleep(1)
                tasks = db.execute(
                    "SELECT count(*) FILTER (WHERE task_path = 'aquadash.watching.check_watches'), "
                    "count(*) FROM django_tasks_database_dbtaskresult"
                ).fetchone()
                rows = db.execute(
                    "SELECT w.job_id, w.end, extract(epoch FROM w.created_at), "
                    "extract(epoch FROM w.ended_at), extract(epoch FROM d.sent_at) "
                    "FROM aquadash_watch w LEFT JOIN aquadash_delivery d ON d.watch_id = w.id"
                ).fetchall()
            peak_kb = memory_kb(worker.pid, "VmHWM")
            elapsed = time.monotonic() - began
            cpu = [
                (cpu_seconds(pid) - before) / elapsed
                for pid, before in zip((worker.pid, servers.zuora.pid), cpu_began, strict=True)
            ]
            machine = (machine_cpu_seconds() - machine_began) / elapsed
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        gets = requests.get(f"{servers.simulator}/_simulator/requests", timeout=10).json()["jobs"]

    ended_at = {job_id: submitted + 2 * args.batch_seconds for job_id, submitted in jobs}
    per_interval, delays, seen, unfinished = [], [], [], 0
    for job_id, end, created, ended, sent in rows:
        if end != "final" or sent is None:
            unfinished += 1
            continue
        intervals = max(1, math.ceil((float(ended) - float(created)) / args.poll_seconds))
        per_interval.append(gets.get(job_id, 0) / intervals)
        delays.append(float(sent) - ended_at[job_id])
        seen.append(float(ended) - ended_at[job_id])
    if not delays:
        raise SystemExit(f"No watch ended with a notification ({unfinished} did not).")
    p50, p95, worst = (percentile(delays, share) for share in (0.5, 0.95, 1.0))
    rounds_per_interval = tasks[0] / max(1.0, elapsed / args.poll_seconds)
    calls = statistics.mean(per_interval)
    print(
        f"\n{len(delays)} of {len(rows)} watches notified; {unfinished} did not end with a "
        "notification."
    )
    sending = [delay - first for delay, first in zip(delays, seen, strict=True)]
    print(
        f"Seen final by the worker p50 / p95 {percentile(seen, 0.5):.1f} / "
        f"{percentile(seen, 0.95):.1f} s after the end; sent p50 / p95 "
        f"{percentile(sending, 0.5):.1f} / {percentile(sending, 0.95):.1f} s after that."
    )
    print(
        f"CPU cores busy, on average over the run: worker {cpu[0]:.2f}, simulator {cpu[1]:.2f}, "
        f"whole machine {machine:.2f} of {os.cpu_count()} (PostgreSQL and Redis included).\n"
    )
    print_checks(
        [
            Check(
                "Watch: Zuora calls per job per interval, mean (max)",
                f"{calls:.2f} ({max(per_interval):.2f})",
                f"pages' budget 1.0; {args.jobs:,} jobs, {args.tenants} tenants, 1 worker",
                "<= 1",
                max(per_interval) <= 1.0,
            ),
            Check(
                "Watch: job end to notification p50 / p95 / max, s",
                f"{p50:.1f} / {p95:.1f} / {worst:.1f}",
                f"poll interval {args.poll_seconds} s",
                f"p95 <= {args.poll_seconds + 2} s",
                p95 <= args.poll_seconds + 2,
            ),
            Check(
                "Watch: watches that ended without a notification",
                str(unfinished),
                f"{len(rows):,} watches",
                "0",
                unfinished == 0,
            ),
            Check(
                "Watch: worker rounds per poll interval (task rows created)",
                f"{rounds_per_interval:.2f} ({tasks[1]:,})",
                f"{elapsed:.0f} s watched, one round due per interval",
                "<= 1.2",
                rounds_per_interval <= 1.2,
            ),
            Check(
                "Watch: worker peak memory",
                f"{peak_kb / 1024:.0f} MB",
                f"{idle_kb / 1024:.0f} MB idle",
                "",
                None,
            ),
        ]
    )


if __name__ == "__main__":
    main()
