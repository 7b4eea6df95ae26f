from django.apps import AppConfig


class AquadashConfig(AppConfig):
    name = "aquadash"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aquadash import checks  # noqa: F401  # registers the system checks
