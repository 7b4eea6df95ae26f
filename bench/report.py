"""Run every benchmark and write docs/benchmarks/report.md (`make bench`, about 8 minutes).

Each benchmark runs as its own process, as you would run it by hand, with the options in RUNS:
short where a benchmark allows it, the herd at the issue's 200 viewers for 60 s with coalescing
on and then off. What each prints becomes a section of the report and its checks a line of the
summary, with the machine, the commit and the date, so the file is never edited by hand: run
`make bench` again to refresh it.

    .venv/bin/python bench/report.py
    .venv/bin/python bench/report.py --output /tmp/report.md --only pages.py,page_weight.py

With --only, an existing report keeps every other benchmark's section and summary rows: only
those of the scripts run are replaced, and a line under the machine says when they were.

Needs PostgreSQL and Redis on 127.0.0.1 (see bench/harness.py); wrk if installed.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import django
import gunicorn
import psycopg
import redis
from harness import POSTGRES, REDIS, ROOT, load_client

BENCH = Path(__file__).resolve().parent
TABLE = "| what | figure | baseline, same run | target | met |\n|---|---:|---|---|---|\n"
# A section ends with the command that wrote it, as "*`bench/budget.py`, 88 s*".
SECTION_END = re.compile(r"^\*`bench/(\S+?\.py)\b.*\*$", re.MULTILINE)
RUNS = [
    ("herd.py", []),
    ("pages.py", ["--rounds", "6", "--seconds", "3"]),
    ("big_jobs.py", []),
    ("page_weight.py", []),
    ("downloads.py", ["--size", "300000000", "--rounds", "3"]),
    ("watch.py", []),
    ("find.py", []),
    ("budget.py", []),
    ("jobs_list.py", []),
    ("archive.py", []),
]


def run(script: str, options: list[str]) -> tuple[str, list[dict], int, float]:
    """The benchmark's output, its checks, its exit status and how long it took; its output
    is shown as it comes too."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as checks:
        env = {**os.environ, "AQUADASH_BENCH_CHECKS": checks.name}
        command = [sys.executable, str(BENCH / script), *options]
        print(f"$ {' '.join(['.venv/bin/python', f'bench/{script}', *options])}", flush=True)
        began = time.monotonic()
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as p:
            lines = []
            for line in p.stdout:
                print(line, end="", flush=True)
                lines.append(line)
        found = [json.loads(line) for line in Path(checks.name).read_text().splitlines()]
    return "".join(lines), found, p.returncode, time.monotonic() - began


def machine() -> list[str]:
    """What the figures were measured on."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    with psycopg.connect(POSTGRES) as connection:
        postgres = connection.execute("SHOW server_version").fetchone()[0].split()[0]
    redis_version = redis.Redis.from_url(REDIS).info("server")["redis_version"]
    client = load_client()
    if client == "wrk":
        version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        client = version.split()[1] if version.startswith("wrk") else "wrk"
        client = f"wrk {client.removeprefix('debian/')}"
    else:
        client = "Python processes (wrk is not installed)"
    return [
        f"{os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB of memory, Linux {platform.release()}",
        f"Python {platform.python_version()}, Django {django.get_version()}, gunicorn "
        f"{gunicorn.__version__}, PostgreSQL {postgres}, Redis {redis_version}; load from "
        f"{client}",
    ]


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    changed = git("status", "--porcelain", "--untracked-files=no").strip()
    return git("rev-parse", "--short", "HEAD").strip() + (" with changes" if changed else "")


def refreshed(old: str, new: dict[str, tuple[str, list[str]]], note: str) -> str | None:
    """The report `old` with the sections and summary rows of the scripts in `new` (script →
    its section and summary rows) replaced, and `note` saying so under the machine; None when
    `old` is not a report this script wrote."""
    head, summary_title, rest = old.partition("## Summary\n\n" + TABLE)
    if not summary_title:
        return None
    rows, _, body = rest.partition("\n\n")
    sections, start = {}, 0
    for end in SECTION_END.finditer(body):
        sections[end[1]] = body[start : end.end()].strip()
        start = end.end()
    # A script's rows are those its old section printed, or the line saying it failed.
    stale = {
        row
        for script in new
        for row in rows.splitlines()
        if row in sections.get(script, "").splitlines() or row.startswith(f"| {script} |")
    }
    kept, added = [], False
    for row in rows.splitlines():
        if row not in stale:
            kept.append(row)
        elif not added:
            kept.extend(row for _, summary in new.values() for row in summary)
            added = True
    if not added:
        kept.extend(row for _, summary in new.values() for row in summary)
    sections.update({script: section for script, (section, _) in new.items()})
    order = [script for script, _ in RUNS] + [s for s in sections if s not in dict(RUNS)]
    said_before = note.partition(" refreshed")[0]  # the same scripts' older refresh
    lines = [line for line in head.rstrip().splitlines() if not line.startswith(said_before)]
    return (
        "\n".join(
            [
                *lines,
                note,
                "",
                "## Summary",
                "",
                TABLE + "\n".join(kept),
                "",
                *[sections[script] + "\n" for script in order if script in sections],
            ]
        ).rstrip()
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs/benchmarks/report.md")
    parser.add_argument("--only", help="comma-separated scripts, e.g. pages.py,big_jobs.py")
    args = parser.parse_args()
    runs = [(s, o) for s, o in RUNS if not args.only or s in args.only.split(",")]

    started_at, load_before = datetime.now(UTC), os.getloadavg()
    described = machine()
    new, failed = {}, []  # script → its section and its summary rows
    for script, options in runs:
        output, checks, status, seconds = run(script, options)
        command = " ".join([f"bench/{script}", *options])
        rows = []
        if status:
            failed.append(script)
            output += f"\n**`{command}` failed (exit status {status}); see its error output.**\n"
            rows.append(f"| {script} | failed, exit status {status} | | | **no** |")
        for check in checks:
            met = "" if check["met"] is None else ("yes" if check["met"] else "**no**")
            rows.append(
                f"| {check['what']} | {check['figure']} | {check['baseline']} | "
                f"{check['target']} | {met} |"
            )
        new[script] = (f"{output.strip()}\n\n*`{command}`, {seconds:.0f} s*", rows)
    minutes = (datetime.now(UTC) - started_at).total_seconds() / 60
    load = [" / ".join(f"{n:.1f}" for n in loads) for loads in (load_before, os.getloadavg())]

    if args.only and args.output.exists():
        note = (
            f"- {', '.join(f'`bench/{script}`' for script in new)} refreshed on its own by "
            f"`bench/report.py --only {args.only}` on {started_at:%Y-%m-%d %H:%M} UTC, commit "
            f"{commit()}, in {minutes:.1f} minutes, load average {load[0]} at the start, "
            f"{load[1]} at the end: its section and summary rows come from that run"
        )
        if (text := refreshed(args.output.read_text(), new, note)) is not None:
            args.output.write_text(text)
            print(f"\nRefreshed {', '.join(new)} in {args.output}")
            if failed:
                raise SystemExit(f"failed: {', '.join(failed)}")
            return

    report = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`bench/report.py`) on {started_at:%Y-%m-%d %H:%M} UTC, "
        f"commit {commit()}, in {minutes:.1f} minutes. Every figure comes from that one run, "
        "beside its baseline measured in the same run; the machine is shared and noisy, so "
        "compare ratios, not absolute figures. Do not edit this file: run `make bench` again.",
        "",
        *[f"- {line}" for line in described],
        f"- Load average (1 / 5 / 15 min): {load[0]} at the start, {load[1]} at the end",
        "",
        "## Summary",
        "",
        TABLE.rstrip(),
        *[row for _, rows in new.values() for row in rows],
        "",
        *[section + "\n" for section, _ in new.values()],
    ]
    args.output.write_text("\n".join(report).rstrip() + "\n")
    print(f"\nWrote {args.output}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
