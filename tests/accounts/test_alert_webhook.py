"""Security alerts also go to a webhook, signed with HMAC-SHA256 and a timestamp.

Requirement: issue #3 "Security alerts ... can also go to a webhook"; DESIGN.md requirement 5
(real-time response).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from accounts.services.events import raise_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "headers": dict(self.headers)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", received
    finally:
        server.shutdown()


def test_an_alert_is_posted_signed_after_commit(receiver, settings, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    url, received = receiver
    settings.SECURITY_ALERT_WEBHOOK_URL = url
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert = raise_alert("token_reuse", severity="critical", user=alice, details={"session_id": "s-1"})
    assert received == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    (call,) = received
    payload = json.loads(call["body"])
    assert payload == {
        "id": alert.pk,
        "kind": "token_reuse",
        "severity": "critical",
        "raised_at": alert.raised_at.isoformat(),
        "user_id": str(alice.pk),
        "details": {"session_id": "s-1"},
    }
    expected = hmac.new(
        settings.SECRET_KEY.encode(),
        call["headers"]["X-Signature-Timestamp"].encode() + b"." + call["body"],
        hashlib.sha256,
    ).hexdigest()
    assert call["headers"]["X-Signature-Sha256"] == expected
    assert "alice" not in call["body"].decode()
