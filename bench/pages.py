"""How many requests a second do aquadash's pages serve, next to a bare signed-in view?

Serves aquadash as `make serve` does (gunicorn, gthread, here 1 worker of 8 threads) on PostgreSQL
and Redis, with bench/settings.py adding /bench/bare/: a signed-in view that answers a few
bytes, so a request costs the session, the user and the middleware and nothing else. Then it
loads each of these for --seconds, signed in, over keep-alive connections, round after round in
alternating order so that the machine's noise falls on every page alike:

  bare      /bench/bare/
  tenant    /bench/tenant/: bare and the tenant check every tenant's page makes, one query
  floor     /bench/floor/: the job page's queries (tenant check, stored job, lookup row) and no
            page: the job page's queries alone
  render    /bench/render/: the job page as it renders it, from a job read once per process and
            no query beyond bare's: the job page's rendering alone
  job page  a stored completed job, the simulator's 4-batch "Month-end extract", stored an
            hour before, as a shared link is mostly opened
  poll      a running job's fragment, as htmx asks for it (HX-Request: true)
  home      the home page
  admin     the Django admin's change page for the completed job's stored JobSnapshot, signed
            in as the same superuser: the page a team would otherwise build in an afternoon

It prints each page's requests per second, its ratio to bare in the same round (the median over
rounds; targets: job page >= 0.3, home >= 0.3) and the job page's rate over the admin's in the
same round (target >= 2), and the SQL queries and writes one request makes
(counted with Django's query capture in a separate process on the same database). Beside them,
each page's CPU time a request in one process with no server around it (Django's WSGI handler
called directly, on the same database and Redis), so that what a page adds to bare, query by
query, reads without the server's own cost or the noise of the load.

    .venv/bin/python bench/pages.py                     # 3 rounds of 5 s a page
    .venv/bin/python bench/pages.py --rounds 5 --seconds 10 --client python
    .venv/bin/python bench/pages.py --database mine --redis redis://127.0.0.1:6379/12

Several people benchmarking on one PostgreSQL and Redis give each run its own --database (the
run makes and drops aquadash_bench_<name>) and Redis database (the run empties it).

The load comes from wrk when it is installed (`apt-get install wrk`), else from Python
processes, which take more of the CPU from the server; the output names the client.
"""

import argparse
import json
import statistics
import subprocess

from harness import (
    MANAGE,
    POSTGRES,
    REDIS,
    ROOT,
    Check,
    cookie_header,
    hammer,
    load_client,
    print_checks,
    production,
    signed_in,
)

COMPLETED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000101"  # the simulator's month-end extract
RUNNING_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000102"
HTMX = {"HX-Request": "true"}
PAGES = {
    "bare": ("/bench/bare/", {}),
    "tenant": ("/bench/tenant/bench/", {}),
    "floor": (f"/bench/floor/bench/{COMPLETED_JOB_ID}/", {}),
    "render": (f"/bench/render/bench/{COMPLETED_JOB_ID}/", {}),
    "job page": (f"/t/bench/jobs/{COMPLETED_JOB_ID}/", {}),
    "poll": (f"/t/bench/jobs/{RUNNING_JOB_ID}/", HTMX),
    "home": ("/", {}),
    "admin": ("/admin/aquadash/jobsnapshot/{completed_pk}/change/", {}),  # pk known once stored
}
TARGETS = {"job page": 0.3, "home": 0.3}  # ratios to bare
OVER_ADMIN = 2.0  # the job page's requests per second over the admin change page's

# Run by `manage.py shell` against the benchmark's database: one request to each page, as the
# load sends them, with its queries counted.
COUNT_QUERIES = """
import json
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(User.objects.get(username="bench"))
counts = {}
for name, (path, headers) in json.loads(PAGES).items():
    headers = {"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()}
    client.get(path, **headers)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path, **headers).status_code == 200, path
    reads = ("SELECT", "SAVEPOINT", "RELEASE", "DECLARE", "FETCH", "CLOSE", "BEGIN", "COMMIT")
    writes = [q for q in queries if not q["sql"].lstrip().upper().startswith(reads)]
    counts[name] = [len(queries), len(writes)]
print(json.dumps(counts))
"""


# Run by `manage.py shell` against the benchmark's database, after the load: each page's CPU
# time per request in one process, through Django's WSGI handler with no server around it and
# nothing else competing for the GIL. Differences between pages are then the cost of what they
# add to bare: a query, the page, the lookup row.
CPU_PER_REQUEST = """
import io, json, statistics, time
from django.core.handlers.wsgi import WSGIHandler
app = WSGIHandler()
def get(path, headers):
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "HTTP_HOST": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_COOKIE": COOKIE, "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(),
        **{"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()},
    }
    answered = []
    b"".join(app(environ, lambda status, headers, *_: answered.append(status)))
    assert answered[0].startswith("200"), (path, answered)
milliseconds = {}
for round_ in range(ROUNDS):
    for name, (path, headers) in json.loads(PAGES).items():
        for _ in range(20):
            get(path, headers)
        began = time.process_time()
        for _ in range(REQUESTS):
            get(path, headers)
        spent = (time.process_time() - began) * 1000 / REQUESTS
        milliseconds.setdefault(name, []).append(spent)
print(json.dumps({name: statistics.median(ms) for name, ms in milliseconds.items()}))
"""

# A completed job's page is mostly opened long after it was stored (links in tickets and chats);
# the first minute after a fetch, when its times still count seconds, is not what it serves.
STORED_AN_HOUR_AGO = """
import json
from datetime import timedelta
from django.utils import timezone
from aquadash.models import JobSnapshot
JobSnapshot.objects.filter(is_final=True).update(
    last_fetched_at=timezone.now() - timedelta(hours=1)
)
print(json.dumps({"completed_pk": JobSnapshot.objects.get(job_id=JOB_ID).pk}))
"""


def in_django(code: str, env: dict[str, str], **names: object) -> dict:
    """What `code` prints last, as JSON, run by `manage.py shell` in the server's environment
    with `names` defined."""
    code = "".join(f"{name} = {value!r}\n" for name, value in names.items()) + code
    done = subprocess.run(
        [*MANAGE, "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="of load per page and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=["wrk", "python"], default=load_client())
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS, help="a Redis database the run may empty")
    parser.add_argument(
        "--database", default="pages", help="the run's PostgreSQL database: aquadash_bench_NAME"
    )
    args = parser.parse_args()

    rates: dict[str, list[float]] = {name: [] for name in PAGES}
    failed = 0
    # One worker: wrk's keep-alive connections would otherwise split between two workers
    # however the accepts fall (all on one in some rounds, evenly in others), which doubles or
    # halves a page's rate at random. With one, each rate is the cost of the request itself.
    servers = production(
        args.database,
        workers=1,
        postgres=args.postgres,
        redis_url=args.redis,
        batch_seconds=3600,  # the running job runs throughout
        DJANGO_SETTINGS_MODULE="bench.settings",
    )
    with servers as running:
        session = signed_in(running.base, running.password)
        for job_id in (COMPLETED_JOB_ID, RUNNING_JOB_ID):  # stored, as a first visit leaves them
            session.get(f"{running.base}/t/bench/jobs/{job_id}/", timeout=30).raise_for_status()
        headers = {"Cookie": cookie_header(session)}
        stored = in_django(STORED_AN_HOUR_AGO, running.env, JOB_ID=COMPLETED_JOB_ID)
        admin_path, _ = PAGES["admin"]
        pages = PAGES | {"admin": (admin_path.format(**stored), {})}

        def answers_200() -> None:
            for path, extra in pages.values():
                response = session.get(running.base + path, headers=extra, timeout=30)
                if response.status_code != 200 or response.history:
                    raise SystemExit(f"{path} answered {response.status_code}, not a page")

        answers_200()
        queries = in_django(COUNT_QUERIES, running.env, PAGES=json.dumps(pages))
        for path, extra in pages.values():  # warm up: templates, connections, caches
            hammer(
                running.base + path,
                headers=headers | extra,
                seconds=1,
                connections=args.connections,
                client=args.client,
            )
        for round_ in range(args.rounds):
            order = list(pages) if round_ % 2 == 0 else list(reversed(pages))
            for name in order:
                path, extra = pages[name]
                rate, errors = hammer(
                    running.base + path,
                    headers=headers | extra,
                    seconds=args.seconds,
                    connections=args.connections,
                    client=args.client,
                )
                rates[name].append(rate)
                failed += errors
        answers_200()
        cpu = in_django(
            CPU_PER_REQUEST,
            running.env,
            PAGES=json.dumps(pages),
            COOKIE=headers["Cookie"],
            ROUNDS=args.rounds,
            REQUESTS=200,
        )

    ratios = {
        name: statistics.median(
            r / bare for r, bare in zip(rates[name], rates["bare"], strict=True)
        )
        for name in pages
    }
    print(
        f"## Pages: requests per second against a bare signed-in view, {args.rounds} rounds of "
        f"{args.seconds} s a page, {args.connections} connections, client {args.client}\n"
    )
    print(
        "| page | requests/s (median) | ratio to bare (median) | CPU ms a request, one process "
        "| bare's CPU over this | SQL queries (writes) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in pages:
        count, writes = queries[name]
        print(
            f"| {name} | {statistics.median(rates[name]):.0f} | {ratios[name]:.2f} | "
            f"{cpu[name]:.2f} | {cpu['bare'] / cpu[name]:.2f} | {count} ({writes}) |"
        )
    print(
        "\nRequests/s in each round: "
        + "; ".join(f"{name} " + ", ".join(f"{r:.0f}" for r in rates[name]) for name in pages)
        + f". Answers other than 200: {failed}. gunicorn (1 gthread worker of 8 threads), "
        "PostgreSQL and Redis, the simulator and the client share the machine's CPUs; writes "
        "are INSERT, UPDATE and DELETE statements (the lookup row, a session save). CPU ms: "
        "each page's median CPU time a request over the rounds, 200 requests a round, in one "
        "process calling Django's WSGI handler directly, with no server and no other request "
        "competing: what each page adds to bare, without the server's own cost.\n"
    )
    checks = [
        Check(
            f"Pages: {name}, requests/s as a ratio to a bare signed-in view",
            f"{ratios[name]:.2f}",
            f"bare {statistics.median(rates['bare']):.0f}/s, {name} "
            f"{statistics.median(rates[name]):.0f}/s",
            f">= {TARGETS[name]}" if name in TARGETS else "",
            ratios[name] >= TARGETS[name] if name in TARGETS else None,
        )
        for name in pages
        if name != "bare"
    ]
    over_admin = statistics.median(
        job / admin for job, admin in zip(rates["job page"], rates["admin"], strict=True)
    )
    checks.append(
        Check(
            "Pages: job page, requests/s over the Django admin's change page for the same job",
            f"{over_admin:.2f}",
            f"admin {statistics.median(rates['admin']):.0f}/s, job page "
            f"{statistics.median(rates['job page']):.0f}/s",
            f">= {OVER_ADMIN}",
            over_admin >= OVER_ADMIN,
        )
    )
    checks.append(Check("Pages: answers other than 200", str(failed), "", "0", failed == 0))
    print_checks(checks)


if __name__ == "__main__":
    main()
