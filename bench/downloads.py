"""Does a 1 GB result stream through the dashboard nearly as fast as straight from Zuora, in
flat memory, with the record count checked?

Starts the simulator and two gunicorn servers (2 gthread workers each, production settings,
one with the record count check on and one with it off), creates a result file of --size bytes
in the simulator, and downloads it in turns, in the same run:

  direct    straight from the simulator, as curl with a token would
  plain     through aquadash, count check off (AQUADASH_COUNT_RECORDS=0)
  counted   through aquadash, count check on (the default)

It prints each throughput, the ratios plain/direct (target >= 0.8) and counted/direct (target
>= 0.7), and the peak memory growth of the counting server's workers (target < 50 MB).

    .venv/bin/python bench/downloads.py                  # 1 GB, 2 rounds, SQLite
    .venv/bin/python bench/downloads.py --size 200000000 --rounds 1
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/downloads.py

Everything runs on loopback in a temporary directory; nothing else is touched. Needs only the
project's requirements (gunicorn among them).
"""

import argparse
import os
import time

import requests
from harness import (
    MANAGE,
    SIM_AUTH,
    Check,
    PeakMemory,
    cpu_seconds,
    environment,
    free_port,
    gunicorn,
    prepare,
    print_checks,
    processes,
    signed_in,
    start,
    wait_for,
)

CHUNK = 1024 * 1024


def download(session: requests.Session, url: str, **kwargs: object) -> tuple[int, float]:
    start = time.perf_counter()
    size = 0
    with session.get(url, stream=True, timeout=60, **kwargs) as response:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
    return size, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000_000, help="bytes of CSV")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    sim_port, plain_port, counted_port = free_port(), free_port(), free_port()
    env = environment(sim_port)
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    with processes() as started:
        password = prepare(env, sim_port)
        start(started, [*MANAGE, "simulate_zuora", "--port", str(sim_port)], env)
        plain_server = start(started, gunicorn(plain_port), {**env, "AQUADASH_COUNT_RECORDS": "0"})
        counted_server = start(started, gunicorn(counted_port), env)
        simulator = f"http://127.0.0.1:{sim_port}"
        for url in (
            simulator + "/_simulator/catalogue",
            f"http://127.0.0.1:{plain_port}/health/",
            f"http://127.0.0.1:{counted_port}/health/",
        ):
            wait_for(url)

        job_id = requests.post(
            f"{simulator}/_simulator/jobs", json={"size": args.size}, timeout=10
        ).json()["id"]
        auth = SIM_AUTH
        job = requests.get(f"{simulator}/v1/batch-query/jobs/{job_id}", auth=auth, timeout=10)
        file_id = job.json()["batches"][0]["fileId"]
        sessions = {}
        for port in (plain_port, counted_port):
            base = f"http://127.0.0.1:{port}"
            sessions[port] = signed_in(base, password)
            sessions[port].get(f"{base}/t/bench/jobs/{job_id}/", timeout=30).raise_for_status()
        file_path = f"/t/bench/jobs/{job_id}/files/{file_id}"

        results: dict[str, list[float]] = {"direct": [], "plain": [], "counted": []}
        cpu = {"plain": 0.0, "counted": 0.0}
        growth = 0
        for _ in range(args.rounds):
            size, seconds = download(
                requests.Session(), f"{simulator}/v1/files/{file_id}", auth=auth
            )
            results["direct"].append(size / seconds)
            used = cpu_seconds(plain_server.pid)
            size, seconds = download(
                sessions[plain_port], f"http://127.0.0.1:{plain_port}{file_path}"
            )
            cpu["plain"] += cpu_seconds(plain_server.pid) - used
            results["plain"].append(size / seconds)
            used = cpu_seconds(counted_server.pid)
            with PeakMemory(counted_server.pid, workers_only=True) as memory:
                size, seconds = download(
                    sessions[counted_port], f"http://127.0.0.1:{counted_port}{file_path}"
                )
            cpu["counted"] += cpu_seconds(counted_server.pid) - used
            results["counted"].append(size / seconds)
            growth = max(growth, memory.growth)

        best = {case: max(speeds) for case, speeds in results.items()}
        print(f"## Downloads: a {size / 1e9:.2f} GB result, best of {args.rounds} rounds\n")
        direct = f"direct {best['direct'] / 1e6:.1f} MB/s"
        print_checks(
            [
                Check(
                    "Downloads: through aquadash, count check off, throughput as a ratio to direct",
                    f"{best['plain'] / best['direct']:.2f}",
                    f"{direct}, this {best['plain'] / 1e6:.1f} MB/s",
                    ">= 0.8",
                    best["plain"] / best["direct"] >= 0.8,
                ),
                Check(
                    "Downloads: through aquadash, count check on, throughput as a ratio to direct",
                    f"{best['counted'] / best['direct']:.2f}",
                    f"{direct}, this {best['counted'] / 1e6:.1f} MB/s",
                    ">= 0.7",
                    best["counted"] / best["direct"] >= 0.7,
                ),
                Check(
                    "Downloads: peak memory growth of the counting server's workers",
                    f"{growth / 1e6:.1f} MB",
                    f"{size / 1e6:,.0f} MB sent",
                    "< 50 MB",
                    growth < 50e6,
                ),
            ]
        )
        gigabytes = size * args.rounds / 1e9
        print(
            f"\nServer CPU per GB: {cpu['plain'] / gigabytes:.1f} s with the count check off, "
            f"{cpu['counted'] / gigabytes:.1f} s with it on, so one worker could pass about "
            f"{gigabytes / cpu['plain'] * 1000:.0f} and {gigabytes / cpu['counted'] * 1000:.0f} "
            "MB/s. The simulator makes its file while it sends it, so here it, not aquadash, "
            "sets the pace of all three paths."
        )
        print(
            f"\n{os.cpu_count()} CPUs; simulator, two gunicorn servers (2 gthread workers) and "
            f"this client on one machine; database {env['DATABASE_URL'].split(':')[0]}."
        )


if __name__ == "__main__":
    main()
