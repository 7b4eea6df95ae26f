"""`manage.py setup_demo`: the demo tenant and users that `make run` needs, against the simulator.

Safe to run on every start: the tenant is brought up to date, and users are created once.
"""

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from aquadash.models import CUSTOM_ENVIRONMENT, Grant, Role, Tenant

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

    def handle(self, *args: Any, new_passwords: bool, **options: Any) -> None:
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
