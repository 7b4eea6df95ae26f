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
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHUNK = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def workers(pid: int) -> list[str]:
    """A gunicorn master's worker processes."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [child for task in tasks for child in (task / "children").read_text().split()]


def rss_of_children(pid: int) -> int:
    """Resident memory, in bytes, of a gunicorn master's workers."""
    total = 0
    for child in workers(pid):
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def cpu_of_children(pid: int) -> float:
    """CPU seconds (user and system) that a gunicorn master's workers have used."""
    ticks = 0
    for child in workers(pid):
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime and stime
    return ticks / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """Samples a server's worker memory every 50 ms while a download runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.baseline = rss_of_children(pid)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_of_children(self.pid))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)


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

    workdir = Path(tempfile.mkdtemp(prefix="aquadash-bench-"))
    sim_port, plain_port, counted_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AQUADASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "SECURE_HSTS_SECONDS": "0",
        "ZUORA_EXTRA_HOSTS": f"127.0.0.1:{sim_port}",
        "ZUORA_ALLOW_HTTP": "1",
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3"),
        "LOG_LEVEL": "WARNING",
    }
    processes = []

    def start(command: list[str], **extra: str) -> subprocess.Popen:
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=ROOT,
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    try:
        manage = [PYTHON, "manage.py"]
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
            subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, capture_output=True)
        password = secrets.token_urlsafe(16)
        setup = (
            "from django.contrib.auth.models import User\n"
            "from aquadash.models import Tenant\n"
            "from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET\n"
            "Tenant.objects.filter(slug='bench').delete()\n"
            f"t = Tenant(slug='bench', name='Bench', environment='custom', "
            f"base_url='http://127.0.0.1:{sim_port}', identity=DEMO_CLIENT_ID)\n"
            "t.set_secret(DEMO_CLIENT_SECRET); t.full_clean(); t.save()\n"
            "User.objects.filter(username='bench').delete()\n"
            f"User.objects.create_superuser('bench', password='{password}')\n"
        )
        subprocess.run(  # noqa: S603
            [*manage, "shell", "-c", setup], cwd=ROOT, env=env, check=True, capture_output=True
        )
        start([*manage, "simulate_zuora", "--port", str(sim_port)])
        gunicorn = [
            PYTHON,
            "-m",
            "gunicorn",
            "aquadash.wsgi",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
        ]
        plain_server = start(
            [*gunicorn, "--bind", f"127.0.0.1:{plain_port}"], AQUADASH_COUNT_RECORDS="0"
        )
        counted_server = start([*gunicorn, "--bind", f"127.0.0.1:{counted_port}"])
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
        auth = ("demo@aquadash.example", "demo-password")
        job = requests.get(f"{simulator}/v1/batch-query/jobs/{job_id}", auth=auth, timeout=10)
        file_id = job.json()["batches"][0]["fileId"]
        sessions = {}
        for port in (plain_port, counted_port):
            session = requests.Session()
            base = f"http://127.0.0.1:{port}"
            session.get(f"{base}/accounts/login/", timeout=10)
            login = session.post(
                f"{base}/accounts/login/",
                timeout=10,
                data={
                    "username": "bench",
                    "password": password,
                    "csrfmiddlewaretoken": session.cookies["csrftoken"],
                },
                headers={"Referer": f"{base}/accounts/login/"},
            )
            login.raise_for_status()
            session.get(f"{base}/t/bench/jobs/{job_id}/", timeout=30).raise_for_status()
            sessions[port] = session
        file_path = f"/t/bench/jobs/{job_id}/files/{file_id}"

        results: dict[str, list[float]] = {"direct": [], "plain": [], "counted": []}
        cpu = {"plain": 0.0, "counted": 0.0}
        growth = 0
        for _ in range(args.rounds):
            size, seconds = download(
                requests.Session(), f"{simulator}/v1/files/{file_id}", auth=auth
            )
            results["direct"].append(size / seconds)
            used = cpu_of_children(plain_server.pid)
            size, seconds = download(
                sessions[plain_port], f"http://127.0.0.1:{plain_port}{file_path}"
            )
            cpu["plain"] += cpu_of_children(plain_server.pid) - used
            results["plain"].append(size / seconds)
            used = cpu_of_children(counted_server.pid)
            with PeakMemory(counted_server.pid) as memory:
                size, seconds = download(
                    sessions[counted_port], f"http://127.0.0.1:{counted_port}{file_path}"
                )
            cpu["counted"] += cpu_of_children(counted_server.pid) - used
            results["counted"].append(size / seconds)
            growth = max(growth, memory.growth)

        best = {case: max(speeds) for case, speeds in results.items()}
        print(f"## Downloads: a {size / 1e9:.2f} GB result, best of {args.rounds} rounds\n")
        print("| path | MB/s | ratio to direct | target |")
        print("|---|---:|---:|---|")
        print(f"| direct from the simulator | {best['direct'] / 1e6:.1f} | 1.00 | |")
        print(
            f"| through aquadash, count check off | {best['plain'] / 1e6:.1f} | "
            f"{best['plain'] / best['direct']:.2f} | >= 0.8 |"
        )
        print(
            f"| through aquadash, count check on | {best['counted'] / 1e6:.1f} | "
            f"{best['counted'] / best['direct']:.2f} | >= 0.7 |"
        )
        print(
            f"\nPeak memory growth of the counting server's workers during a download: "
            f"{growth / 1e6:.1f} MB (target < 50 MB)."
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
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
