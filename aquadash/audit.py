"""Every audit event also as one JSON line on the `aquadash.audit` logger, for the security
team's log pipeline (settings.LOGGING sends them to stderr, the line alone, no prefix).

A line names the request it came from when the proxy in front gave it an X-Request-ID, so the
pipeline can join it to the proxy's own log. Text is passed through the secret redaction that
every log line gets: an event never holds a secret, and a line never shows one if it did.
"""

import contextvars
import json
import logging
from collections.abc import Callable
from datetime import datetime

from django.http import HttpRequest, HttpResponseBase

from aquadash.redaction import redact

logger = logging.getLogger("aquadash.audit")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def line(*, at: datetime, kind: str, user: str, tenant: str, target: str, detail: str) -> str:
    """One event as a JSON object on one line (json.dumps escapes any newline inside)."""
    event = {
        "time": at.isoformat(),
        "kind": kind,
        "user": redact(user),
        "tenant": tenant,
        "target": redact(target),
        "detail": redact(detail),
    }
    if current := request_id.get():
        event["request_id"] = current
    return json.dumps(event, ensure_ascii=False)


def write(**event: object) -> None:
    logger.info(line(**event))


def _usable(value: str) -> str:
    """The proxy's request ID if it is short printable ASCII; a client could send anything."""
    return value if len(value) <= 128 and value.isascii() and value.isprintable() else ""


class RequestId:
    """Keeps the request's X-Request-ID (from the proxy in front) for the audit lines it makes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        token = request_id.set(_usable(request.headers.get("X-Request-ID", "").strip()))
        try:
            return self.get_response(request)
        finally:
            request_id.reset(token)
