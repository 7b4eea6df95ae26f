"""System checks of aquadash's own settings, run by `manage.py check` (and `--deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

MIN_METRICS_TOKEN = 32  # characters; secrets.token_urlsafe(32) gives 43


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


@register(Tags.security, deploy=True)
def short_metrics_token(**kwargs: Any) -> list[Warning]:
    token = settings.AQUADASH_METRICS_TOKEN
    if not token or len(token) >= MIN_METRICS_TOKEN:
        return []
    return [
        Warning(
            f"AQUADASH_METRICS_TOKEN is {len(token)} characters long: short enough to guess.",
            hint=f"Use at least {MIN_METRICS_TOKEN} random characters, such as the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
            id="aquadash.W002",
        )
    ]


@register(Tags.security, deploy=True)
def passwords_beside_single_sign_on(**kwargs: Any) -> list[Warning]:
    if not settings.AQUADASH_OIDC or not settings.AQUADASH_LOCAL_LOGIN or settings.DEBUG:
        return []
    return [
        Warning(
            "Single sign-on is on, and so are local passwords: someone removed at the identity "
            "provider can still sign in here with a password.",
            hint="Set AQUADASH_LOCAL_LOGIN=0, and list the break-glass superusers in "
            "AQUADASH_BREAK_GLASS.",
            id="aquadash.W003",
        )
    ]
