from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.declarations import declare_account_models
        from accounts.models import User
        from compliance.modelchanges import track_changes

        declare_account_models()
        from accounts.lookups import declare_subject_lookups

        declare_subject_lookups()
        from accounts.api.views import require_step_up
        from accounts.portal.decorators import needs_step_up
        from identity.hooks import register_step_up, register_web_step_up

        register_step_up(require_step_up)
        register_web_step_up(needs_step_up)
        from accounts.services.account import end_erased_account
        from identity.hooks import on_subject_erased

        on_subject_erased(end_erased_account)
        track_changes(User, exclude=("password", "last_login", "email_index", "phone_index"))
