"""`manage.py setup_demo`: the demo tenant and users that `make run` needs, against the simulator.

Safe to run on every start: the tenant is brought up to date, and users are created once.
"""

import os
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from aquadash import archive, jobs, zuora
from aquadash.models import CUSTOM_ENVIRONMENT, Grant, KeptJob, Role, Tenant

DEMO_SLUG = "demo"
DEMO_GROUP = "Demo users"
VIEWER_GROUP = "Demo viewers"


class Command(BaseCommand):
    help = (
        "Create the demo tenant (the Zuora simulator) and its users: demo (downloader), viewer "
        "(viewer only: no result data) and admin (superuser)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-passwords",
            action="store_true",
            help="Give the demo, viewer and admin users new random passwords.",
        )
        parser.add_argument(
            "--kept-job",
            action="store_true",
            help="Keep the files of the simulator's job whose files it has purged, copied from "
            "a simulator served for a moment on the demo's address (before `make run` starts "
            "its own there), so the demo shows a kept job served from the archive.",
        )

    def handle(self, *args: Any, new_passwords: bool, kept_job: bool, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "setup_demo is for development only (DEBUG=1): it makes users whose passwords "
                "it prints."
            )
        from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

        url = os.environ.get("AQUADASH_SIMULATOR_URL", "http://127.0.0.1:8765")
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first() or Tenant(slug=DEMO_SLUG)
        tenant.name = "Demo (simulated Zuora)"
        tenant.environment, tenant.base_url = CUSTOM_ENVIRONMENT, url
        tenant.auth_method, tenant.identity = "oauth", DEMO_CLIENT_ID
        tenant.is_active = True
        # Re-encrypted on every run, so a regenerated development key never strands the demo.
        tenant.set_secret(DEMO_CLIENT_SECRET)
        try:
            tenant.full_clean()
        except ValidationError as exc:
            raise CommandError(
                f"The demo tenant's base URL {url} is refused: {' '.join(exc.messages)} "
                "(set AQUADASH_SIMULATOR_URL, and list its host:port in ZUORA_EXTRA_HOSTS)."
            ) from None
        tenant.save()
        self.stdout.write(f"Tenant {tenant.name}: {url}")
        # One user per role a person can see the difference of: files or none, and everything.
        for username, group_name, role in [
            ("demo", DEMO_GROUP, Role.DOWNLOADER),
            ("viewer", VIEWER_GROUP, Role.VIEWER),
        ]:
            group, _ = Group.objects.get_or_create(name=group_name)
            Grant.objects.update_or_create(tenant=tenant, group=group, defaults={"role": role})
            self._user(username, superuser=False, new_password=new_passwords).groups.add(group)
        self._user("admin", superuser=True, new_password=new_passwords)
        if kept_job:
            self._keep_purged_job(tenant, url)

    def _keep_purged_job(self, tenant: Tenant, url: str) -> None:
        """The simulator's job whose files it purged (PURGED_FILES_JOB_ID), kept by aquadash:
        copied by the archive's own worker task from a simulator served here for a moment,
        its clock set back to days ago, when the job's files were still there."""
        from aquadash.simulator import PURGED_FILES_JOB_ID, Simulator, serve

        if archive.serves(tenant, PURGED_FILES_JOB_ID):
            self.stdout.write(f"Kept job {PURGED_FILES_JOB_ID}: its files are in the archive.")
            return
        KeptJob.objects.filter(
            tenant=tenant, job_id=PURGED_FILES_JOB_ID
        ).delete()  # a try that failed
        now = [time.time()]
        simulator = Simulator(clock=lambda: now[0])  # its catalogue dates from now
        now[0] -= 3.5 * 24 * 3600  # the job finished half a day ago: its files are there
        address = urlsplit(url)
        try:
            with serve(simulator, address.hostname or "127.0.0.1", address.port or 80):
                state = jobs.fetch_job(tenant, PURGED_FILES_JOB_ID, user=None)
                kept = archive.keep(tenant, state.job, reason=KeptJob.Reason.ASKED)
                archive.copy_job.call(kept.pk)
        except (OSError, zuora.ZuoraError) as exc:
            self.stdout.write(f"No kept demo job: could not serve or reach {url} ({exc}).")
            return
        kept.refresh_from_db()
        self.stdout.write(
            f"Kept job {PURGED_FILES_JOB_ID} ({kept.get_status_display()}): the simulator has "
            "purged its files, aquadash serves them from its archive."
        )

    def _user(self, username: str, *, superuser: bool, new_password: bool) -> AbstractUser:
        user = get_user_model().objects.filter(username=username).first()
        if user is not None and not new_password:
            self.stdout.write(
                f"User {username} exists (its password was printed when it was made); "
                "`make demo-passwords` gives it a new one."
            )
            return user
        created = user is None
        if created:
            # An address, so that watching a job in the demo prints its e-mail in the terminal.
            user = get_user_model()(
                username=username,
                email=f"{username}@aquadash.example",
                is_staff=superuser,
                is_superuser=superuser,
            )
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
        verb = "Created user" if created else "New password for"
        self.stdout.write(self.style.SUCCESS(f"{verb} {username}: password {password}"))
        return user
