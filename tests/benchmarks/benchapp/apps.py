from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "tests.benchmarks.benchapp"
    label = "benchapp"
    verbose_name = "Field-encryption benchmark"
    default_auto_field = "django.db.models.BigAutoField"
