"""JSON log lines that carry the request id and never personal data.

Personal data is kept out at the source (we log ids, never e-mails or names); the redaction filter
is a second line of defence that masks anything shaped like an e-mail address or a phone number
in the message and its arguments before a line is written.
"""

from __future__ import annotations

import contextvars
import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Not preceded by a word character, dot or hyphen: ids such as UUIDs ("...-446655440000") stay.
PHONE_PATTERN = re.compile(r"(?<![\w.-])\+?\d[\d ()-]{7,}\d(?![\w.])")
# Fields the formatter itself fills from trusted sources.
UNREDACTED_FIELDS = frozenset({"request_id", "time", "level", "logger"})


def redact(text: str) -> str:
    return PHONE_PATTERN.sub("[phone]", EMAIL_PATTERN.sub("[email]", text))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactPersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not lose the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(_JsonFormatter):
    """JSON lines; every string that reaches the line (extras, tracebacks) is redacted too."""

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.setdefault("request_id", getattr(record, "request_id", "-"))
        for key, value in list(log_record.items()):
            if key in UNREDACTED_FIELDS:
                continue
            if isinstance(value, str):
                log_record[key] = redact(value)
            elif not isinstance(value, int | float | bool | type(None)):
                # Objects passed as extras (Django passes the request) would be str()-ed by the
                # encoder, path and all: do it here, redacted.
                log_record[key] = redact(str(value))

    def formatException(self, ei: Any) -> str:
        return redact(str(super().formatException(ei)))
