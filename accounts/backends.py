"""Sign-in by e-mail through the blind index (the e-mail column itself is ciphertext)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.models import User
from accounts.risk.engine import PROBE_ATTRIBUTE
from accounts.services.sessions import SIGNIN_USER_ATTRIBUTE, user_for_sign_in
from identity.crypto.blind import email_index


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
        # reads the risk engine's failure counts when the sign-in service asks (FailureProbe). In a
        # sign-in, django-axes' lockout check has read the row already (accounts.axes_handler).
        index = email_index(address)
        read = request.__dict__.pop(SIGNIN_USER_ATTRIBUTE, None) if request is not None else None
        if read is not None and read[0] == index:
            user = read[1]
        else:
            user = user_for_sign_in(address, getattr(request, PROBE_ATTRIBUTE, None))
        if user is None:
            # Run the hasher anyway so that an unknown address takes as long as a wrong password.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
