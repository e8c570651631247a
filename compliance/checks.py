"""``manage.py check`` fails when personal data is not accounted for in the registry.

- compliance.E001: a model of ours (settings.PERSONAL_DATA_APPS) is not declared.
- compliance.E002: a field of ours is not classified (the message names it).
- compliance.E003: a declaration classifies a field the model does not have.
- compliance.E004: a field of ours classified as personal data is stored in clear.
- compliance.E005: a library model that holds personal data (points at the user model, or is listed
  in settings.PERSONAL_DATA_LIBRARY_MODELS) is not declared, so export and erasure would miss it.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import models

from compliance.registry import Kind, Registry, registry
from identity.crypto.fields import EncryptedField


def _classifiable_fields(model: type[models.Model]) -> list[Any]:
    return [*model._meta.concrete_fields, *model._meta.many_to_many]


def _points_at_user(model: type[models.Model]) -> bool:
    user_label = settings.AUTH_USER_MODEL.lower()
    for f in model._meta.concrete_fields:
        remote = getattr(f, "remote_field", None)
        if remote is not None and getattr(remote, "model", None) is not None:
            target = remote.model
            # An unresolved reference is still the "app.Model" string.
            label = target.lower() if isinstance(target, str) else target._meta.label_lower
            if label == user_label:
                return True
    return False


def check_model(model: type[models.Model], reg: Registry, *, ours: bool) -> list[checks.CheckMessage]:
    label = model._meta.label
    declaration = reg.for_model(model)
    if declaration is None:
        if ours:
            return [
                checks.Error(
                    f"{label} is not declared in the personal-data registry",
                    hint="Declare it with compliance.registry.declare() in its AppConfig.ready().",
                    obj=model,
                    id="compliance.E001",
                )
            ]
        return [
            checks.Error(
                f"{label} holds personal data (library model) but is not declared in the registry",
                hint="Declare it so that export and erasure reach it.",
                obj=model,
                id="compliance.E005",
            )
        ]
    if not ours:
        return []
    errors: list[checks.CheckMessage] = []
    present = {f.name: f for f in _classifiable_fields(model)}
    for name, f in present.items():
        fc = declaration.fields.get(name)
        if fc is None:
            errors.append(
                checks.Error(
                    f"{label}.{name} is not classified in the personal-data registry",
                    hint="Classify it as personal(...), pseudonymous(...), secret() or not_personal().",
                    obj=model,
                    id="compliance.E002",
                )
            )
        elif (
            fc.kind == Kind.PERSONAL and not fc.clear_reason and not isinstance(f, EncryptedField | models.BinaryField)
        ):
            errors.append(
                checks.Error(
                    f"{label}.{name} is personal data stored in clear",
                    hint="Use an identity.crypto.fields Encrypted*Field, or state why not (stored_in_clear=).",
                    obj=model,
                    id="compliance.E004",
                )
            )
    for name in declaration.fields:
        if name not in present:
            errors.append(
                checks.Error(
                    f"{label}: the registry classifies {name!r}, which the model does not have",
                    obj=model,
                    id="compliance.E003",
                )
            )
    return errors


def run_registry_checks(reg: Registry, model_list: list[type[models.Model]]) -> list[checks.CheckMessage]:
    our_apps = set(settings.PERSONAL_DATA_APPS)
    listed = {label.lower() for label in getattr(settings, "PERSONAL_DATA_LIBRARY_MODELS", [])}
    errors: list[checks.CheckMessage] = []
    for model in model_list:
        meta = model._meta
        if meta.abstract or meta.proxy or meta.swapped:
            continue
        ours = meta.app_label in our_apps
        if ours or meta.label_lower in listed or _points_at_user(model):
            errors.extend(check_model(model, reg, ours=ours))
    return errors


@checks.register("compliance")
def check_personal_data_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return run_registry_checks(registry, list(apps.get_models()))
