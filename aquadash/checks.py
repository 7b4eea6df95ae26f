"""System checks of aquadash's own settings, run by `manage.py check` (and `--deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def extra_hosts_in_production(**kwargs: Any) -> list[Warning]:
    if not settings.ZUORA_EXTRA_HOSTS or settings.DEBUG:
        return []
    hosts = ", ".join(f"{host}:{port}" for host, port in sorted(settings.ZUORA_EXTRA_HOSTS))
    return [
        Warning(
            f"ZUORA_EXTRA_HOSTS is set ({hosts}): tenants may send their Zuora secrets to these "
            "hosts as well as to Zuora's own.",
            hint="Unset it in production; it is meant for the simulator and tests.",
            id="aquadash.W001",
        )
    ]
