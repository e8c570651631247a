"""CONTRACT.md, Operations: liveness and readiness probes, and the request id on every response.

DESIGN.md requirement 6 (deployment with monitoring) relies on these; requirement 1 keeps
exception text, which can hold connection strings, out of the readiness answer.
"""

from __future__ import annotations

import pytest
from django.test import Client

from identity import health


def test_healthz_answers_ok(client: Client) -> None:
    """CONTRACT.md, Operations: GET /healthz is 200 while the process serves."""
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_ok_when_everything_answers(client: Client) -> None:
    """CONTRACT.md, Operations: GET /readyz is 200 when database, cache and broker answer."""
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }


@pytest.mark.django_db
def test_readyz_names_the_failed_check_without_its_error(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTRACT.md, Operations: 503 naming what failed; DESIGN.md requirement 1: no error text leaks."""
    secret = "postgresql://identity:hunter2@db.internal:5432/identity"

    def database_down() -> None:
        raise RuntimeError(f"could not connect to {secret}")

    monkeypatch.setitem(health.CHECKS, "database", database_down)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "cache": "ok", "broker": "ok"},
    }
    body = response.content.decode()
    assert "hunter2" not in body
    assert "RuntimeError" not in body
    assert "could not connect" not in body


def test_response_carries_a_request_id(client: Client) -> None:
    """DESIGN.md requirement 5: every response carries an X-Request-ID that ties it to the log lines."""
    response = client.get("/healthz")

    assert len(response["X-Request-ID"]) == 32
    assert response["X-Request-ID"].isalnum()


def test_well_formed_request_id_is_echoed(client: Client) -> None:
    """DESIGN.md requirement 5: a request id set by the proxy (nginx $request_id) is kept end to end."""
    request_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

    response = client.get("/healthz", headers={"X-Request-ID": request_id})

    assert response["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "incoming",
    [
        "has spaces in it",
        "x" * 65,
        "short",
        "inject\r\nSet-Cookie: a=b",
        'quote"and<tag>',
    ],
)
def test_malformed_request_id_is_replaced(client: Client, incoming: str) -> None:
    """DESIGN.md requirement 1: a client cannot put arbitrary text into log lines through X-Request-ID."""
    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32
    assert response["X-Request-ID"].isalnum()
