from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Privacy and compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from compliance import checks  # noqa: F401  (registers the registry check)
        from compliance.declarations import declare_platform_models

        declare_platform_models()
