"""Sign-in by e-mail through the blind index (the e-mail column itself is ciphertext)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.models import User
from accounts.risk.engine import PROBE_ATTRIBUTE
from accounts.services.sessions import user_for_sign_in


class EmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        address = email or username
        if not address or password is None:
            return None
        # One statement built once (accounts.services.sessions.Lookups), not a compiled query; it also
        # reads the risk engine's failure counts when the sign-in service asks (FailureProbe).
        user = user_for_sign_in(address, getattr(request, PROBE_ATTRIBUTE, None))
        if user is None:
            # Run the hasher anyway so that an unknown address takes as long as a wrong password.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
