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
It prints the throughputs, the ratio archive/fileresponse (target >= 0.9) and the peak memory
growth of the worker while archiving and of the server while serving (targets < 50 MB).

    .venv/bin/python bench/archive.py                        # 1 GB in 10 segments, 3 rounds
    .venv/bin/python bench/archive.py --size 200000000 --rounds 1

Needs PostgreSQL and Redis on 127.0.0.1 (see bench/harness.py).
"""

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import requests
from harness import (
    MANAGE,
    SIM_AUTH,
    Check,
    print_checks,
    processes,
    production,
    signed_in,
    start,
    workers,
)

CHUNK = 1024 * 1024


def rss(pid: int) -> int:
    """Resident memory, in bytes, of a process and its children."""
    total = 0
    for process in [str(pid), *workers(pid)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class PeakMemory:
    """Samples a process's memory (with its children's) every 50 ms while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self._stop = pid, threading.Event()
        self.baseline = self.peak = rss(pid)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss(self.pid))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)


def download(session: requests.Session, url: str) -> tuple[int, float]:
    began, size = time.perf_counter(), 0
    with session.get(url, stream=True, timeout=120) as response:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
    return size, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000_000, help="bytes of CSV")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
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

        # Each segment is fetched both ways, one right after the other, so that whatever else
        # the shared machine does weighs on both alike; each round's totals give a throughput.
        speeds: dict[str, list[float]] = {"fileresponse": [], "archive": []}
        server = servers.aquadash.pid
        serving_growth = 0
        for _ in range(args.rounds):
            sizes, times = dict.fromkeys(speeds, 0.0), dict.fromkeys(speeds, 0.0)
            with PeakMemory(server) as serving:
                for segment in batch["segments"]:
                    for case, path in (
                        ("fileresponse", f"/bench/archived/{keys[segment]}"),
                        ("archive", f"/t/bench/jobs/{job_id}/files/{segment}"),
                    ):
                        size, took = download(session, base + path)
                        sizes[case] += size
                        times[case] += took
            serving_growth = max(serving_growth, serving.growth)
            for case in speeds:
                speeds[case].append(sizes[case] / times[case])
        total = sizes["archive"]
        with PeakMemory(server) as joining:
            joined, joined_seconds = download(
                session, f"{base}/t/bench/jobs/{job_id}/batches/{batch['batchId']}/download"
            )
        serving_growth = max(serving_growth, joining.growth)

        best = {case: max(each) for case, each in speeds.items()}
        print(
            f"## Archive: a {total / 1e9:.2f} GB result in {len(batch['segments'])} segments, "
            f"best of {args.rounds} rounds\n"
        )
        print_checks(
            [
                Check(
                    "Archive: serving every segment from the archive, throughput as a ratio to "
                    "FileResponse from disk",
                    f"{best['archive'] / best['fileresponse']:.2f}",
                    f"FileResponse {best['fileresponse'] / 1e6:.1f} MB/s, archive "
                    f"{best['archive'] / 1e6:.1f} MB/s",
                    ">= 0.9",
                    best["archive"] / best["fileresponse"] >= 0.9,
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
            "filesystem. The same client reads both cases, 1 MB at a time. Both are sent with "
            "sendfile; what separates them is aquadash's work for each download (the tenant "
            "check, the stored job, the kept file's row, the Download and audit rows), about "
            "15 ms a file here, against some 50-60 ms to send 100 MB: on this shared machine the "
            "ratio has measured 0.75 to 1.04 from run to run."
        )


if __name__ == "__main__":
    main()
