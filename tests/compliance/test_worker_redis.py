"""A request carried out by a real Celery worker through a real Redis broker.

Requirement: issue #4 "a worker run against a real Redis broker in CI"; DESIGN.md "background work:
Celery with a Redis broker". The worker is a separate process on the same PostgreSQL test database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from compliance.dsr import services
from compliance.models import PrivacyRequest, SystemRun
from identity.celery import app as celery_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_carries_out_an_export_from_the_broker(make_user, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.CONNECTED_DATASETS = []
    alice = make_user("worker.subject@example.test")
    request = services.submit_request(
        subject=alice, kind="access", channel="api", actor=alice, verification="session+mfa"
    ).request
    PrivacyRequest.objects.filter(pk=request.pk).update(status="in_progress")
    run = SystemRun.objects.create(request=request, system="identity", action="export")

    params = connection.settings_dict
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgresql://{params['USER'] or 'postgres'}@{params['HOST'] or '127.0.0.1'}:"
        f"{params['PORT'] or 5432}/{params['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "EXPORT_ROOT": settings.EXPORT_ROOT,
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "identity",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    eager = celery_app.conf.task_always_eager
    try:
        celery_app.conf.task_always_eager = False
        from compliance.fulfilment import run_system

        run_system.apply_async(args=[run.pk], queue=queue)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if PrivacyRequest.objects.get(pk=request.pk).status == "completed":
                break
            assert worker.poll() is None, worker.stdout.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
            time.sleep(0.5)
        request.refresh_from_db()
        if request.status != "completed":
            worker.terminate()
            output = worker.communicate(timeout=30)[0].decode(errors="replace")
            pytest.fail(f"the worker did not finish in time:\n{output[-3000:]}")
        assert SystemRun.objects.get(pk=run.pk).status == "done"
        assert request.export.path.startswith(settings.EXPORT_ROOT)
    finally:
        celery_app.conf.task_always_eager = eager
        worker.terminate()
        worker.wait(timeout=30)
    assert settings.CELERY_BROKER_URL.startswith("redis://")
