"""`manage.py simulate_zuora`: serve the Zuora AQuA simulator for the demo until interrupted."""

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aquadash.simulator import (
    CATALOGUE,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Simulator,
    serve,
)
from aquadash.simulator.budget import TENANT_TYPES


class Command(BaseCommand):
    help = "Serve a simulated Zuora AQuA API (see SIMULATOR.md) until interrupted."
    requires_system_checks: list[str] = []  # it needs no database and no settings beyond these

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--batch-seconds", type=float, default=8.0, help="How long each batch runs."
        )
        parser.add_argument(
            "--unknown-job",
            choices=["404", "200"],
            default="404",
            help="Answer unknown jobs with HTTP 404, or with HTTP 200 and errorCode 90002.",
        )
        parser.add_argument(
            "--max-concurrent-jobs",
            type=int,
            default=50,
            help="Submitted or executing jobs of a kind (stateful, stateless) before AQuA error "
            "90028; Zuora allows 50 per tenant. Benchmarks standing in for many tenants raise it.",
        )
        parser.add_argument(
            "--tenant-type",
            choices=sorted(TENANT_TYPES),
            default="production",
            help="Whose documented API limits to keep (see SIMULATOR.md, Rate limits).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        simulator = Simulator(
            batch_seconds=options["batch_seconds"],
            max_concurrent_jobs=options["max_concurrent_jobs"],
            unknown_job=options["unknown_job"],
            tenant_type=options["tenant_type"],
        )
        host, port = options["host"], options["port"]
        try:
            with serve(simulator, host=host, port=port) as running:
                self.announce(running.url)
                threading.Event().wait()
        except KeyboardInterrupt:
            self.stdout.write("Simulator stopped.")
        except OSError as error:  # most likely the port is taken
            raise CommandError(f"Cannot serve on {host}:{port}: {error}") from error

    def announce(self, url: str) -> None:
        self.stdout.write(f"Zuora AQuA simulator at {url}")
        self.stdout.write(f"  OAuth client_id:     {DEMO_CLIENT_ID}")
        self.stdout.write(f"  OAuth client_secret: {DEMO_CLIENT_SECRET}")
        self.stdout.write(f"  Basic auth:          {DEMO_USERNAME} / {DEMO_PASSWORD}")
        self.stdout.write("Seeded jobs:")
        for job_id, description in CATALOGUE.items():
            self.stdout.write(f"  {job_id}  {description}")
