"""External services as data systems: a signed webhook out, a signed callback back (issue #4).

For each run we POST ``{"run", "request", "action", "subject": {"user_id"}, "callback", "state"?}``
to the service, signed with HMAC-SHA256 under the service's shared secret over
``timestamp + "." + body`` (headers ``X-Signature-Timestamp`` and ``X-Signature-SHA256``;
``Idempotency-Key`` is the run id, so a retried delivery is recognised). ``state`` comes with
rectify/restrict/unrestrict/opt_out runs: the subject's current choices and restriction and, for a
rectification only, the corrected profile values (compliance.systems.base.SubjectState). The run
then waits. The service answers on the callback URL with the same signature scheme: ``{"run",
"status": "done"|"failed", "counts", "kept", "read_back", "records"}`` (records for an export,
each ``{"category", "source", "values"}``: a category of the registry (``compliance.registry.Category``),
a source of 1-64 letters, digits, ".", "_" or "-", and an object; anything else is refused with 400).
Callbacks older than five minutes, or seen before, are refused. A listener's own change (a consent
toggle, a profile correction) is sent as ``{"run": null, "action": "sync", "subject", "state"}``,
with no callback.

Services are configured in ``CONNECTED_SERVICES_JSON``: a JSON list of ``{"name", "url",
"secret_env", "purpose", "categories"}``; the secret itself is read from the environment variable
``secret_env`` names (or ``<that>_FILE``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from compliance.systems.base import Description, ErasureResult, Record, SubjectRef, SubjectState
from identity.env import env_str

MAX_SKEW_SECONDS = 300


class ServiceError(Exception):
    pass


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    url: str
    secret_env: str
    purpose: str
    categories: tuple[str, ...]

    @property
    def secret(self) -> bytes:
        value = env_str(self.secret_env)
        if not value:
            raise ServiceError(f"{self.name}: the shared secret {self.secret_env} is not set")
        return value.encode()


def configured_services() -> list[ServiceConfig]:
    raw = getattr(settings, "CONNECTED_SERVICES", [])
    services = []
    for position, item in enumerate(raw):
        try:
            services.append(
                ServiceConfig(
                    name=str(item["name"]),
                    url=str(item["url"]),
                    secret_env=str(item["secret_env"]),
                    purpose=str(item.get("purpose", "")),
                    categories=tuple(str(c) for c in item.get("categories", [])),
                )
            )
        except (KeyError, TypeError) as exc:
            raise ServiceError(f"CONNECTED_SERVICES_JSON entry {position + 1} lacks {exc}") from None
    return services


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float | None = None) -> bool:
    try:
        age = abs((now or time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= MAX_SKEW_SECONDS and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSystem:
    """A data system reached by webhook. Its work is asynchronous: ``dispatch`` sends, and the
    callback (compliance.api.views.ServiceCallbackApi) finishes the run."""

    asynchronous = True

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.name = config.name

    def describe(self) -> Description:
        return Description(
            name=self.name,
            purposes=(self.config.purpose,) if self.config.purpose else (),
            lawful_bases=(),
            categories=self.config.categories,
            recipients=(f"{self.name} (a processor we send data to)",),
            retention="as agreed with the processor",
            sources=("the service's own records about you",),
        )

    def dispatch(
        self, *, run_id: int, request_id: str, action: str, subject: SubjectRef, state: SubjectState | None = None
    ) -> None:
        message: dict[str, Any] = {
            "run": run_id,
            "request": request_id,
            "action": action,
            "subject": {"user_id": subject.user_id},
            "callback": f"{settings.SITE_URL}/api/v1/privacy/callbacks/{self.name}",
        }
        if state is not None:
            message["state"] = state.as_json()
        self._post(json.dumps(message, sort_keys=True).encode(), idempotency_key=f"run-{run_id}")

    def notify(self, *, subject: SubjectRef, state: SubjectState) -> None:
        """A listener's own change (no request, so no callback): the service applies the state."""
        body = json.dumps(
            {"run": None, "action": "sync", "subject": {"user_id": subject.user_id}, "state": state.as_json()},
            sort_keys=True,
        ).encode()
        self._post(body, idempotency_key="sync-" + hashlib.sha256(body).hexdigest()[:32])

    def apply(self, subject: SubjectRef, state: SubjectState) -> dict[str, int]:
        """Asynchronous: fulfilment calls ``dispatch``; the counts arrive with the callback."""
        raise ServiceError(f"{self.name} is reached by webhook; its results arrive by callback")

    def _post(self, body: bytes, *, idempotency_key: str) -> None:
        timestamp = str(int(time.time()))
        message = urllib.request.Request(  # noqa: S310 (an operator-configured https URL)
            self.config.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Signature-Timestamp": timestamp,
                "X-Signature-SHA256": sign(self.config.secret, timestamp, body),
                "Idempotency-Key": idempotency_key,
            },
        )
        with urllib.request.urlopen(message, timeout=10) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise ServiceError(f"{self.name} answered {response.status}")

    # The synchronous half of the protocol has nothing to do: results arrive by callback.
    def export(self, subject: SubjectRef) -> Iterator[Record]:
        return iter(())

    def erase(self, subject: SubjectRef) -> ErasureResult:
        return ErasureResult()

    def read_back(self, subject: SubjectRef) -> dict[str, int]:
        from compliance.models import SystemRun

        run = (
            SystemRun.objects.filter(
                system=self.name, action=SystemRun.Action.ERASE, request__subject_ref=subject.user_id
            )
            .order_by("-id")
            .first()
        )
        return {str(k): int(v) for k, v in (run.read_back if run else {}).items()}


def load_services() -> list[WebhookSystem]:
    return [WebhookSystem(config) for config in configured_services()]


def parse_callback(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("run"), int)
        or data.get("status") not in ("done", "failed")
    ):
        raise ValueError("a callback needs an integer run and a status of done or failed")
    return data
