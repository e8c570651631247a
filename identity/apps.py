from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class IdentityConfig(AppConfig):
    default = True
    name = "identity"
    verbose_name = "Identity platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from identity import checks  # noqa: F401  (registers the settings checks)


class SecondFactorAdminConfig(admin_apps.AdminConfig):
    """The admin site of identity.admin_site: staff must complete a second factor."""

    default = False
    default_site = "identity.admin_site.SecondFactorAdminSite"
