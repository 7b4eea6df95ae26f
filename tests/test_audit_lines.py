"""Every audit event is also one JSON line on the `aquadash.audit` logger, for the security
team's log pipeline: on stderr, alone on its line, never with a secret."""

import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
from django.utils import timezone

from aquadash import audit
from aquadash.models import AuditEvent
from tests.conftest import start_django


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The messages the audit logger writes during the test."""
    written: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("aquadash.audit")
    logger.addHandler(handler)
    yield written
    logger.removeHandler(handler)


def test_every_audit_event_is_one_json_line(tenant, member, lines):
    AuditEvent.record(
        AuditEvent.Kind.CREDENTIALS_CHANGED, user=member, tenant=tenant, target="secret"
    )
    assert len(lines) == 1 and "\n" not in lines[0]
    event = json.loads(lines[0])
    stored = AuditEvent.objects.get()
    assert event == {
        "time": stored.at.isoformat(),
        "kind": "credentials_changed",
        "user": member.username,
        "tenant": tenant.slug,
        "target": "secret",
        "detail": "",
    }
    assert datetime.fromisoformat(event["time"]).utcoffset() is not None


def test_an_event_not_recorded_writes_no_line(tenant, member, lines):
    for _ in range(2):  # the second is within once_per, so not recorded
        AuditEvent.record(AuditEvent.Kind.ACCESS_DENIED, user=member, tenant=tenant, once_per=300)
    assert len(lines) == AuditEvent.objects.count() == 1


def test_audit_lines_hide_secrets():
    # The line itself, before the log handler's own redaction (settings.LOGGING) passes over it.
    text = audit.line(
        at=timezone.now(),
        kind="connection_test_failed",
        user="ana",
        tenant="acme",
        target="Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload",
        detail="Zuora said: client_secret=hunter2-hunter2 is wrong",
    )
    assert "eyJhbGciOiJIUzI1NiJ9" not in text and "hunter2" not in text
    assert json.loads(text)["detail"] == "Zuora said: client_secret=[redacted] is wrong"


def test_audit_lines_carry_the_proxys_request_id(tenant, outsider_client, lines):
    response = outsider_client.get("/t/acme/jobs/", HTTP_X_REQUEST_ID="req-4f2a")
    assert response.status_code == 404
    event = json.loads(lines[0])
    assert event["kind"] == "access_denied" and event["request_id"] == "req-4f2a"


def test_an_unusable_request_id_is_left_out(tenant, outsider_client, lines):
    outsider_client.get("/t/acme/jobs/", HTTP_X_REQUEST_ID="x" * 500)
    assert "request_id" not in json.loads(lines[0])


def test_audit_lines_go_to_stderr_alone_whatever_the_log_level():
    started = start_django(
        LOG_LEVEL="ERROR",
        then=(
            "from datetime import UTC, datetime\n"
            "from aquadash import audit\n"
            "audit.write(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), kind='download',"
            " user='ana', tenant='acme', target='job', detail='')\n"
        ),
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stderr.strip()) == {
        "time": "2026-01-02T03:04:05+00:00",
        "kind": "download",
        "user": "ana",
        "tenant": "acme",
        "target": "job",
        "detail": "",
    }
