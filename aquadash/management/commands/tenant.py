"""`manage.py tenant add|update|list|test|remove`: manage tenants without the admin.

The secret is never a command-line argument, where shell history and `ps` would keep it: it is
read from AQUADASH_TENANT_SECRET or, when that is unset, from standard input.
"""

import argparse
import getpass
import os
import sys
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from aquadash import zuora
from aquadash.admin import BASIC_AUTH_WARNING
from aquadash.models import CUSTOM_ENVIRONMENT, AuditEvent, Grant, Role, Tenant

SECRET_VARIABLE = "AQUADASH_TENANT_SECRET"


# How each role is granted on the command line; --group is a downloader, as before roles.
GRANT_OPTIONS = {
    "--viewer-group": Role.VIEWER,
    "--group": Role.DOWNLOADER,
    "--admin-group": Role.ADMIN,
}


class Command(BaseCommand):
    help = "Add, update, list, test or remove Zuora tenants."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser(
            "add", help=f"Add a tenant. The secret comes from {SECRET_VARIABLE} or standard input."
        )
        add.add_argument("slug")
        self._tenant_options(add, creating=True)
        update = actions.add_parser("update", help="Change a tenant; only the options given.")
        update.add_argument("slug")
        self._tenant_options(update, creating=False)
        update.add_argument(
            "--new-secret",
            action="store_true",
            help=f"Replace the stored secret with one read from {SECRET_VARIABLE} or standard "
            "input.",
        )
        update.add_argument("--active", action=argparse.BooleanOptionalAction)
        actions.add_parser("list", help="List the tenants (never their secrets).")
        test = actions.add_parser("test", help="Check a tenant's credentials with Zuora.")
        test.add_argument("slug")
        remove = actions.add_parser("remove", help="Delete a tenant.")
        remove.add_argument("slug")

    def _tenant_options(self, parser: CommandParser, *, creating: bool) -> None:
        parser.add_argument("--name", required=creating)
        where = parser.add_mutually_exclusive_group(required=creating)
        where.add_argument("--environment", choices=list(zuora.ENVIRONMENTS))
        where.add_argument(
            "--base-url", help="Another host, listed in ZUORA_EXTRA_HOSTS (the simulator)."
        )
        parser.add_argument(
            "--auth", dest="auth_method", choices=["oauth", "basic"], required=creating
        )
        parser.add_argument(
            "--client-id",
            "--username",
            dest="identity",
            required=creating,
            help="The OAuth client ID, or the username with --auth basic.",
        )
        parser.add_argument(
            "--entity-id", help="Multi-entity tenants only: 32 hex digits, or the same as a UUID."
        )
        parser.add_argument("--org-ids", help="Multi-Org tenants only: comma-separated.")
        parser.add_argument("--time-zone", help="IANA name; default America/Los_Angeles.")
        for option, role in GRANT_OPTIONS.items():
            parser.add_argument(
                option,
                dest=f"{role}_groups",
                action="append",
                metavar="NAME",
                help=f"A group granted this tenant as {role.value}; repeat for more. Missing "
                "groups are created. With update, the groups given in any --…group option "
                "replace the granted ones.",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            return self.list_tenants()
        tenant = Tenant(slug=options["slug"]) if action == "add" else self._tenant(options["slug"])
        if action in ("add", "update"):
            return self.save_tenant(tenant, options)
        if action == "test":
            return self.test_tenant(tenant)
        tenant.delete()
        self.stdout.write(f"Removed tenant {tenant.name} ({tenant.slug}).")

    def save_tenant(self, tenant: Tenant, options: dict[str, Any]) -> None:
        creating = tenant.pk is None
        signs_in = (tenant.environment, tenant.base_url, tenant.auth_method)
        for field in ("name", "auth_method", "identity", "entity_id", "org_ids", "time_zone"):
            if options[field] is not None:
                setattr(tenant, field, options[field])
        if options["environment"]:
            tenant.environment, tenant.base_url = options["environment"], ""
        if options["base_url"]:
            tenant.environment, tenant.base_url = CUSTOM_ENVIRONMENT, options["base_url"]
        if options.get("active") is not None:
            tenant.is_active = options["active"]
        # Everything else is checked before the secret is asked for.
        try:
            tenant.full_clean(exclude=["encrypted_secret"])
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        moved = (tenant.environment, tenant.base_url, tenant.auth_method) != signs_in
        if moved and not creating and not options["new_secret"]:
            raise CommandError(
                "You changed where or how aquadash signs in to Zuora: give the secret again "
                "with --new-secret, so that it only goes where you meant it to."
            )
        if creating or options["new_secret"]:
            tenant.set_secret(read_secret())
        with transaction.atomic():
            tenant.save()
            grants = {
                name: role
                for role in Role
                for name in options[f"{role}_groups"] or ()  # a group given twice: its best
            }
            if any(options[f"{role}_groups"] is not None for role in Role):
                tenant.grants.all().delete()
                for name, role in grants.items():
                    Grant.objects.create(tenant=tenant, group=self._group(name), role=role)
            if creating or moved or options.get("new_secret") or options["identity"] is not None:
                AuditEvent.record(
                    AuditEvent.Kind.CREDENTIALS_CHANGED,
                    username="manage.py tenant",
                    tenant=tenant,
                    target="tenant added" if creating else "credentials",
                    detail="secret replaced" if options.get("new_secret") else "",
                )
        verb = "Added" if creating else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} tenant {tenant.name} ({tenant.slug})."))
        if tenant.auth_method == "basic":
            self.stdout.write(self.style.WARNING(BASIC_AUTH_WARNING))

    def list_tenants(self) -> None:
        tenants = Tenant.objects.prefetch_related("grants__group")
        if not tenants:
            self.stdout.write("No tenants yet: add one with `manage.py tenant add`.")
        for tenant in tenants:
            groups = (
                ", ".join(f"{each.group.name} ({each.role})" for each in tenant.grants.all())
                or "superusers only"
            )
            if tenant.last_contact_at is None:
                contact = "never tested"
            else:
                outcome = "OK" if tenant.last_contact_ok else "failed"
                contact = f"{outcome} {tenant.last_contact_at:%Y-%m-%d %H:%M} UTC"
            self.stdout.write(
                f"{tenant.slug}\t{tenant.name}\t{tenant.environment}\t{tenant.auth_method}\t"
                f"{'active' if tenant.is_active else 'inactive'}\t{groups}\t{contact}"
            )

    def test_tenant(self, tenant: Tenant) -> None:
        ok, message = tenant.check_connection()
        if not ok:
            raise CommandError(f"{tenant.name}: {message}")
        self.stdout.write(self.style.SUCCESS(f"{tenant.name}: {message}"))

    def _tenant(self, slug: str) -> Tenant:
        try:
            return Tenant.objects.get(slug=slug)
        except Tenant.DoesNotExist:
            raise CommandError(f"There is no tenant {slug!r}; `tenant list` shows them.") from None

    def _group(self, name: str) -> Group:
        group, created = Group.objects.get_or_create(name=name)
        if created:
            self.stdout.write(f"Created group {name}.")
        return group


@sensitive_variables()
def read_secret() -> str:
    secret = os.environ.get(SECRET_VARIABLE)
    if secret is None:
        if sys.stdin.isatty():
            secret = getpass.getpass("Client secret or password: ")
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise CommandError(
            f"No secret given: set {SECRET_VARIABLE} or pass the secret on standard input."
        )
    return secret


def _describe(error: ValidationError) -> str:
    return " ".join(
        f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
        for field, messages in error.message_dict.items()
    )
