"""Extension points the platform offers to apps, so that ``compliance`` never imports ``accounts``.

``accounts`` registers its step-up checks at start-up (one for the API, one for the portal);
``compliance``'s privacy API and pages call them for requests that need a fresh second factor
(access, portability, erasure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_step_up: Callable[[Any], None] | None = None
_web_step_up: Callable[[Any], Any] | None = None


def register_step_up(check: Callable[[Any], None]) -> None:
    global _step_up
    _step_up = check


def require_step_up(request: Any) -> None:
    """Raise the API's ``step_up_required`` problem unless the caller verified a factor recently."""
    if _step_up is None:
        raise ImproperlyConfigured("no step-up check registered (accounts registers one in AppConfig.ready)")
    _step_up(request)


def register_web_step_up(check: Callable[[Any], Any]) -> None:
    global _web_step_up
    _web_step_up = check


def web_step_up(request: Any) -> Any:
    """For portal views: a redirect to re-verify with a second factor, or None when it is fresh."""
    if _web_step_up is None:
        raise ImproperlyConfigured("no web step-up check registered (accounts registers one in AppConfig.ready)")
    return _web_step_up(request)


_erased: list[Callable[[Any], None]] = []


def on_subject_erased(callback: Callable[[Any], None]) -> None:
    """Register what an app must do when a subject is erased (accounts: end sessions, lock the account)."""
    _erased.append(callback)


def subject_erased(user: Any) -> None:
    for callback in _erased:
        callback(user)
