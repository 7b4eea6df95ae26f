"""`manage.py rotate_secrets`: re-encrypt every stored tenant secret (the Zuora secret and the
chat webhook's URL) with the newest key.

Rotating keys: put the new key first in AQUADASH_ENCRYPTION_KEYS and keep the old ones after it,
restart, run this, then drop the old keys. Each row is rewritten on its own, so an interrupted
run leaves every secret readable with the full key list, and running it again is harmless.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from aquadash import encryption
from aquadash.models import Tenant


class Command(BaseCommand):
    help = "Re-encrypt every stored tenant secret with the first key in AQUADASH_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated, unreadable = 0, []
        fields = ["encrypted_secret", "encrypted_webhook_url"]
        for tenant in Tenant.objects.only("pk", "name", *fields):
            for field in fields:
                stored = getattr(tenant, field)
                if not stored:
                    continue
                try:
                    token = encryption.rotate(stored, tenant=tenant.name)
                except encryption.CredentialUnreadable:
                    unreadable.append(tenant.name)
                    continue
                # Only if unchanged since it was read: never overwrite what an admin just entered.
                rotated += Tenant.objects.filter(pk=tenant.pk, **{field: stored}).update(
                    **{field: token}
                )
        self.stdout.write(f"Re-encrypted {rotated} stored secret(s) with the newest key.")
        if unreadable:
            raise CommandError(
                "No key in AQUADASH_ENCRYPTION_KEYS opens a stored secret of "
                + ", ".join(sorted(set(unreadable)))
                + ". Enter those secrets again in the admin or with `manage.py tenant update "
                "--new-secret`."
            )
