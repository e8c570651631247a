"""Helpers for API tests: sign in, authorise, run on-commit work (mail, tasks)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.conftest import PASSWORD

HOME_IP = "81.2.69.10"


def login(
    client: APIClient, email: str, password: str = PASSWORD, *, device: str = "phone-1", ip: str = HOME_IP
) -> Any:
    return client.post(
        "/api/v1/auth/login",
        {"email": email, "password": password, "device": {"id": device, "name": "Pixel", "platform": "android"}},
        format="json",
        REMOTE_ADDR=ip,
    )


def bearer(client: APIClient, access: str) -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    return body
