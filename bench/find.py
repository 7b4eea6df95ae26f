"""Does finding a job in any tenant answer by its deadline, asking each tenant once, when one
tenant is slow and one is down?

Serves aquadash as `make serve` does (gunicorn, PostgreSQL, Redis) with --tenants tenants:
one on the simulator that holds the job, one on a simulator whose every answer takes
--slow-seconds, one on a closed port, and the rest on a simulator that does not know the job.
For each of --rounds new jobs it opens /find/<job id>/ as a person who sees every tenant
(nothing stored yet, so every tenant is asked) and prints:

  time to answer     the slowest and median search, beside AQUADASH_FIND_SECONDS (target:
                     the search stops asking at the deadline; the page follows within 0.5 s)
  Zuora calls        job GETs each tenant's simulator served per search (target: 1 a tenant)

    .venv/bin/python bench/find.py
    .venv/bin/python bench/find.py --tenants 50 --deadline 3
"""

import argparse
import statistics
import subprocess
import time

import requests
from harness import (
    MANAGE,
    ROOT,
    Check,
    free_port,
    print_checks,
    processes,
    production,
    signed_in,
    start,
    wait_for,
)

SETUP = """
from aquadash.models import Tenant
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
for slug, url in {tenants!r}:
    t = Tenant(slug=slug, name=slug.title(), environment="custom", base_url=url,
               identity=DEMO_CLIENT_ID)
    t.set_secret(DEMO_CLIENT_SECRET); t.full_clean(); t.save()
"""


def job_gets(simulator: str) -> dict[str, int]:
    return requests.get(f"{simulator}/_simulator/requests", timeout=10).json()["jobs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=8.0, help="AQUADASH_FIND_SECONDS")
    parser.add_argument("--slow-seconds", type=float, default=12.0)
    args = parser.parse_args()

    others_port, slow_port = free_port(), free_port()
    others, slow = f"http://127.0.0.1:{others_port}", f"http://127.0.0.1:{slow_port}"
    hosts = f"127.0.0.1:{others_port},127.0.0.1:{slow_port},127.0.0.1:1"
    with production("find", extra_hosts=hosts, AQUADASH_FIND_SECONDS=str(args.deadline)) as servers:
        env = servers.env
        with processes() as started:
            for port in (others_port, slow_port):
                start(started, [*MANAGE, "simulate_zuora", "--port", str(port)], env)
            for simulator in (others, slow):
                wait_for(simulator + "/_simulator/catalogue")
            fault = {
                "kind": "slow",
                "times": None,
                "path": "/v1/batch-query/jobs/",
                "seconds": args.slow_seconds,
            }
            requests.post(f"{slow}/_simulator/faults", json=fault, timeout=10).raise_for_status()
            tenants = [("slow", slow), ("down", "http://127.0.0.1:1")]
            tenants += [(f"other-{n}", others) for n in range(args.tenants - 3)]
            subprocess.run(
                [*MANAGE, "shell", "-c", SETUP.format(tenants=tenants)],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            session = signed_in(servers.base, servers.password)
            times, calls, outcomes = [], [], []
            for _ in range(args.rounds):
                job_id = requests.post(
                    f"{servers.simulator}/_simulator/jobs", json={"records": 3}, timeout=10
                ).json()["id"]
                before = [job_gets(s).get(job_id, 0) for s in (servers.simulator, others, slow)]
                began = time.monotonic()
                answer = session.get(
                    f"{servers.base}/find/{job_id}/", allow_redirects=False, timeout=60
                )
                times.append(time.monotonic() - began)
                outcomes.append(f"{answer.status_code} {answer.headers.get('Location', '')}")
                time.sleep(
                    args.slow_seconds + 1
                )  # let the slow tenant's answer arrive, to count it
                after = [job_gets(s).get(job_id, 0) for s in (servers.simulator, others, slow)]
                calls.append([a - b for a, b in zip(after, before, strict=True)])
    print(f"Answers: {', '.join(outcomes)}")
    print(f"Searches took {', '.join(f'{t:.2f}' for t in times)} s")
    print(f"Job GETs per search (holder, {args.tenants - 3} others, slow): {calls}\n")
    asked = [c for c in calls if c == [1, args.tenants - 3, 1]]
    print_checks(
        [
            Check(
                "Find: time to answer with one tenant slow and one down, slowest (median), s",
                f"{max(times):.2f} ({statistics.median(times):.2f})",
                f"deadline {args.deadline:g} s; {args.tenants} tenants",
                f"<= {args.deadline + 0.5:g} s",
                max(times) <= args.deadline + 0.5,
            ),
            Check(
                "Find: searches that asked every reachable tenant exactly once",
                f"{len(asked)} of {len(calls)}",
                f"{args.tenants - 1} reachable tenants a search",
                "all",
                len(asked) == len(calls),
            ),
            Check(
                "Find: searches that opened the one match",
                str(sum(o.startswith("302 /t/bench/") for o in outcomes)),
                f"{len(outcomes)} searches",
                "all",
                all(o.startswith("302 /t/bench/") for o in outcomes),
            ),
        ]
    )


if __name__ == "__main__":
    main()
