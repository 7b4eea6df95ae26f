"""Does aquadash keep a 1 GB segmented result in flat memory, and serve it back from its archive
nearly as fast as Django's FileResponse serves the same files from disk?

Starts the simulator, aquadash under gunicorn (production settings, PostgreSQL, Redis, the
archive on the filesystem in a temporary folder) and one worker (`manage.py db_worker`).
Creates a result of --size bytes in --segments segments, presses "Keep these files" and waits
until the worker has kept it, sampling the worker's memory. Then downloads every segment in
turns, in the same run:

  fileresponse  the stored file straight from disk with Django's FileResponse (bench/urls.py)
  archive       the file's own download link, which aquadash serves from its archive (Zuora is
                not asked), with the record count checked as for any download

and finally the whole batch joined into one CSV from the archive, sampling the server's memory.
It prints the throughputs, the ratio archive/fileresponse (target >= 0.9: the median of each
segment's two downloads side by side, with the spread of whole rounds), the time each case takes
to answer and to be done after its last byte, and the peak memory growth of the worker while
archiving and of the server while serving (targets < 50 MB).

    .venv/bin/python bench/archive.py                        # 1 GB in 10 segments, 5 rounds
    .venv/bin/python bench/archive.py --size 200000000 --rounds 1

Needs PostgreSQL and Redis on 127.0.0.1 (see bench/harness.py).
"""

import argparse
import os
import statistics
import tempfile
import time

import psycopg
import requests
from harness import (
    MANAGE,
    SIM_AUTH,
    Check,
    PeakMemory,
    print_checks,
    processes,
    production,
    signed_in,
    start,
)

CHUNK = 1024 * 1024


def download(session: requests.Session, url: str) -> tuple[int, float, float]:
    """Bytes read, seconds to the response's headers and seconds to its last byte."""
    began, size = time.perf_counter(), 0
    with session.get(url, stream=True, timeout=120) as response:
        answered = time.perf_counter() - began
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
    return size, answered, time.perf_counter() - began


def settled(session: requests.Session, base: str) -> float:
    """Seconds until the connection answers again: the server closes a response (and the
    archive finishes its download's rows) before it reads the next request on it."""
    began = time.perf_counter()
    session.get(f"{base}/health/", timeout=30).raise_for_status()
    return time.perf_counter() - began


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000_000, help="bytes of CSV")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="aquadash-bench-archive-")
    overrides = {
        "AQUADASH_ARCHIVE_URL": f"file://{folder}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }

    with production("archive", **overrides) as servers, processes() as started:
        worker = start(
            started, [*MANAGE, "db_worker", "--no-reload", "--no-startup-delay"], servers.env
        )
        simulator, base = servers.simulator, servers.base
        job_id = requests.post(
            f"{simulator}/_simulator/jobs",
            json={"size": args.size, "segments": args.segments},
            timeout=10,
        ).json()["id"]
        job = requests.get(f"{simulator}/v1/batch-query/jobs/{job_id}", auth=SIM_AUTH, timeout=10)
        batch = job.json()["batches"][0]
        session = signed_in(base, servers.password)
        session.get(f"{base}/t/bench/jobs/{job_id}/", timeout=60).raise_for_status()

        time.sleep(1)  # the worker settles after its start
        began = time.perf_counter()
        with PeakMemory(worker.pid) as archiving:
            session.post(
                f"{base}/t/bench/jobs/{job_id}/archive/",
                headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": base + "/"},
                timeout=60,
            ).raise_for_status()
            with psycopg.connect(servers.env["DATABASE_URL"], autocommit=True) as database:
                while True:
                    (status,) = database.execute(
                        "SELECT status FROM aquadash_keptjob WHERE job_id = %s", [job_id]
                    ).fetchone()
                    if status != "copying":
                        break
                    time.sleep(0.5)
                keys = dict(
                    database.execute(
                        "SELECT file_id, key FROM aquadash_keptfile f JOIN aquadash_keptjob j "
                        "ON f.kept_job_id = j.id WHERE j.job_id = %s",
                        [job_id],
                    ).fetchall()
                )
        archive_seconds = time.perf_counter() - began
        if status != "kept":
            raise SystemExit(f"The job was not kept: {status}")

        # Each segment is fetched both ways, one right after the other and in turns which goes
        # first, so that whatever else the shared machine does weighs on both alike. Each case
        # has a connection of its own, and after each download a /health/ request on the same
        # connection waits for the server to be done with it: what the server does after the
        # last byte (the archive writes its Download and audit rows as it closes the file) never
        # falls on the next download's clock. Two clocks: "sent", to the last byte, what the
        # person downloading waits and the target; "free", until the connection answers again,
        # all the server's work. Each segment's two downloads, side by side in time, give a
        # ratio; the median of them all is held to the target, as the rounds' spread is shown
        # (the machine is shared: one download in a few is slowed by others' work).
        cases = {
            "fileresponse": lambda segment: f"/bench/archived/{keys[segment]}",
            "archive": lambda segment: f"/t/bench/jobs/{job_id}/files/{segment}",
        }
        connections = {case: requests.Session() for case in cases}
        for each in connections.values():
            each.cookies.update(session.cookies)
        clocks = ("sent", "free")
        ratios: dict[str, list[float]] = {clock: [] for clock in clocks}  # each round's
        pairs: dict[str, list[float]] = {clock: [] for clock in clocks}  # each segment's
        totals = {(case, what): 0.0 for case in cases for what in ("bytes", "seconds")}
        answers: dict[str, list[float]] = {case: [] for case in cases}
        afters: dict[str, list[float]] = {case: [] for case in cases}
        server = servers.aquadash.pid
        serving_growth = 0
        for round_number in range(args.rounds):
            sizes = dict.fromkeys(cases, 0)
            times = {(case, clock): 0.0 for case in cases for clock in clocks}
            with PeakMemory(server) as serving:
                for number, segment in enumerate(batch["segments"]):
                    order = list(cases) if (number + round_number) % 2 == 0 else [*cases][::-1]
                    took_here: dict[tuple[str, str], float] = {}
                    for case in order:
                        connection = connections[case]
                        size, answered, took = download(connection, base + cases[case](segment))
                        after = settled(connection, base)
                        sizes[case] += size
                        took_here[case, "sent"], took_here[case, "free"] = took, took + after
                        totals[case, "bytes"] += size
                        totals[case, "seconds"] += took
                        answers[case].append(answered)
                        afters[case].append(after)
                    for key, seconds in took_here.items():
                        times[key] += seconds
                    for clock in clocks:
                        pairs[clock].append(
                            took_here["fileresponse", clock] / took_here["archive", clock]
                        )
            serving_growth = max(serving_growth, serving.growth)
            for clock in clocks:
                ratios[clock].append(
                    sizes["archive"]
                    / times["archive", clock]
                    / (sizes["fileresponse"] / times["fileresponse", clock])
                )
        total = sizes["archive"]
        with PeakMemory(server) as joining:
            joined, _, joined_seconds = download(
                session, f"{base}/t/bench/jobs/{job_id}/batches/{batch['batchId']}/download"
            )
        serving_growth = max(serving_growth, joining.growth)

        ratio, free = median(pairs["sent"]), median(pairs["free"])
        speed = {case: totals[case, "bytes"] / totals[case, "seconds"] / 1e6 for case in cases}
        print(
            f"## Archive: a {total / 1e9:.2f} GB result in {len(batch['segments'])} segments, "
            f"{args.rounds} rounds\n"
        )
        print_checks(
            [
                Check(
                    "Archive: serving a segment from the archive, throughput to the last byte "
                    "as a ratio to FileResponse from disk, median of every segment's pair",
                    f"{ratio:.3f}",
                    f"FileResponse {speed['fileresponse']:,.0f} MB/s, archive "
                    f"{speed['archive']:,.0f} MB/s over all rounds; rounds "
                    f"{min(ratios['sent']):.2f} to {max(ratios['sent']):.2f}",
                    ">= 0.9",
                    ratio >= 0.9,
                ),
                Check(
                    "Archive: the same until the connection answers again (the Download and "
                    "audit rows written after the last byte included)",
                    f"{free:.3f}",
                    f"rounds {min(ratios['free']):.2f} to {max(ratios['free']):.2f}",
                    "",
                    None,
                ),
                Check(
                    "Archive: a segment's answer (its headers), then the connection's next "
                    "answer after its last byte, median ms",
                    f"{median(answers['archive']) * 1e3:.1f} / "
                    f"{median(afters['archive']) * 1e3:.1f}",
                    f"FileResponse {median(answers['fileresponse']) * 1e3:.1f} / "
                    f"{median(afters['fileresponse']) * 1e3:.1f}",
                    "",
                    None,
                ),
                Check(
                    "Archive: peak memory growth of the worker while it archives the result",
                    f"{archiving.growth / 1e6:.1f} MB",
                    f"{total / 1e6:,.0f} MB kept in {archive_seconds:.0f} s",
                    "< 50 MB",
                    archiving.growth < 50e6,
                ),
                Check(
                    "Archive: peak memory growth of the server's workers serving it back",
                    f"{serving_growth / 1e6:.1f} MB",
                    f"segments and the whole batch joined ({joined / 1e6:,.0f} MB in "
                    f"{joined_seconds:.1f} s)",
                    "< 50 MB",
                    serving_growth < 50e6,
                ),
            ]
        )
        print(
            f"\n{os.cpu_count()} CPUs; simulator, gunicorn (2 gthread workers of 8 threads), one "
            "db_worker and this client on one machine; PostgreSQL, Redis; the archive on the "
            "filesystem. The same client reads both cases, 1 MB at a time, each on a connection "
            "of its own, in turns. Both are sent with sendfile; what separates them is aquadash's "
            "work before the first byte (the tenant check, the stored job, the Download row "
            "committed, the kept file's row: the gap in the answers above) and after the last "
            "(the Download and audit rows, one transaction). Against the 35-55 ms this machine "
            "takes to send 100 MB, those few milliseconds are the whole gap; single rounds vary "
            "widely on this shared machine, so the median of every segment's pair is held to "
            "the target."
        )


if __name__ == "__main__":
    main()
