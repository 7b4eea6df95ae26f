from django.apps import AppConfig


class AquadashConfig(AppConfig):
    name = "aquadash"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from aquadash import checks  # noqa: F401  # registers the system checks
        from aquadash.models import AuditEvent

        def locked_out(
            sender: object, *, username: str = "", ip_address: str = "", **_: object
        ) -> None:
            AuditEvent.record(
                AuditEvent.Kind.LOCKED_OUT, username=username or "", detail=f"from {ip_address}"
            )

        user_locked_out.connect(locked_out, weak=False, dispatch_uid="aquadash-audit-lockout")
