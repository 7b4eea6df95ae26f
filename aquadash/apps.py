from django.apps import AppConfig


class AquadashConfig(AppConfig):
    name = "aquadash"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.conf import settings
        from django.db.models.signals import post_save

        from aquadash import checks  # noqa: F401  # registers the system checks
        from aquadash.models import ApiToken, AuditEvent

        def locked_out(
            sender: object, *, username: str = "", ip_address: str = "", **_: object
        ) -> None:
            AuditEvent.record(
                AuditEvent.Kind.LOCKED_OUT, username=username or "", detail=f"from {ip_address}"
            )

        user_locked_out.connect(locked_out, weak=False, dispatch_uid="aquadash-audit-lockout")

        def disabled(sender: object, *, instance: object, **_: object) -> None:
            # Revoked for good: enabling the account again does not bring its tokens back.
            if not instance.is_active:
                ApiToken.revoke_all_of(instance, why="the account was disabled")

        post_save.connect(
            disabled,
            sender=settings.AUTH_USER_MODEL,
            weak=False,
            dispatch_uid="aquadash-revoke-tokens-of-disabled",
        )
