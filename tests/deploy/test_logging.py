"""DESIGN.md requirement 1: plaintext personal data never appears in logs.

Log lines are JSON objects, one per line, carrying the request id (requirement 6: monitoring);
anything shaped like an e-mail address or a phone number is masked before a line is written.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from identity.logging import JsonFormatter, RedactPersonalDataFilter, RequestIdFilter, request_id_var

EMAIL = "alice@example.test"
PHONE = "+49 30 1234567"


@dataclass
class CapturedLog:
    logger: logging.Logger
    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        text = self.stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def captured() -> Iterator[CapturedLog]:
    """A logger wired like settings.LOGGING's console handler, writing to a StringIO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            fmt="%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactPersonalDataFilter())
    logger = logging.getLogger("tests.deploy.logging")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield CapturedLog(logger=logger, stream=stream)
    finally:
        logger.handlers = []
        logger.propagate = True


def test_each_record_is_one_json_object_per_line_with_the_request_id(captured: CapturedLog) -> None:
    """DESIGN.md requirement 6: structured JSON logs that carry the request id."""
    token = request_id_var.set("req-0123456789")
    try:
        captured.logger.info("first line\nwith a newline inside")
        captured.logger.warning("second line")
    finally:
        request_id_var.reset(token)
    captured.logger.info("outside a request")

    lines = captured.lines()

    assert [(line["level"], line["logger"], line["message"], line["request_id"]) for line in lines] == [
        ("INFO", "tests.deploy.logging", "first line\nwith a newline inside", "req-0123456789"),
        ("WARNING", "tests.deploy.logging", "second line", "req-0123456789"),
        ("INFO", "tests.deploy.logging", "outside a request", "-"),
    ]
    assert all(line["time"] for line in lines)


def test_email_and_phone_in_the_message_are_redacted(captured: CapturedLog) -> None:
    """DESIGN.md requirement 1: an e-mail or phone number written into the message is masked."""
    captured.logger.warning(f"sign-in failed for {EMAIL}, call {PHONE}")

    (line,) = captured.lines()

    assert line["message"] == "sign-in failed for [email], call [phone]"
    assert EMAIL not in captured.stream.getvalue()
    assert PHONE not in captured.stream.getvalue()


def test_email_and_phone_in_the_arguments_are_redacted(captured: CapturedLog) -> None:
    """DESIGN.md requirement 1: personal data passed as %-arguments is masked after formatting."""
    captured.logger.warning("sign-in failed for %s from %s (attempt %d)", EMAIL, PHONE, 3)

    (line,) = captured.lines()

    assert line["message"] == "sign-in failed for [email] from [phone] (attempt 3)"
    assert EMAIL not in captured.stream.getvalue()
    assert PHONE not in captured.stream.getvalue()


def test_email_in_an_exception_traceback_is_redacted(captured: CapturedLog) -> None:
    """DESIGN.md requirement 1: an exception message holding an e-mail is masked in the traceback too."""
    try:
        raise ValueError(f"no account for {EMAIL}")
    except ValueError:
        captured.logger.exception("lookup failed")

    (line,) = captured.lines()

    assert line["message"] == "lookup failed"
    assert "ValueError: no account for [email]" in line["exc_info"]
    assert EMAIL not in captured.stream.getvalue()


def test_objects_passed_as_extras_are_redacted(captured: CapturedLog) -> None:
    """Django passes the request as an extra on 404 and error lines; its path may hold an e-mail."""

    class Request:
        def __str__(self) -> str:
            return f"<WSGIRequest: GET '/nope/{EMAIL}'>"

    captured.logger.warning("Not Found", extra={"request": Request(), "status_code": 404})
    (line,) = captured.lines()
    assert line["request"] == "<WSGIRequest: GET '/nope/[email]'>"
    assert line["status_code"] == 404
