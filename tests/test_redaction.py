"""Secrets stay out of log lines and error reports, even where no decorator was remembered."""

import base64
import io
import logging
import sys
from collections.abc import Callable

import pytest
import requests
from django.core import mail
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter
from pytest_django.fixtures import Settings

from aquadash import zuora
from aquadash.models import Tenant
from aquadash.redaction import RedactSecrets, SecretHidingReporterFilter
from tests.conftest import CANARY_SECRET

TOKEN = "0123456789abcdef0123456789abcdef"


def redacted(message: str, *args: object) -> str:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, args, None)
    RedactSecrets().filter(record)
    return record.getMessage()


def test_log_filter_redacts_bearer_basic_and_client_secret() -> None:
    message = redacted(
        "sent %s, %s and %s",
        f"Authorization: Bearer {TOKEN}",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        f"client_secret={CANARY_SECRET}&grant_type=client_credentials",
    )
    assert message == (
        "sent Authorization: Bearer [redacted], Authorization: Basic [redacted] and "
        "client_secret=[redacted]&grant_type=client_credentials"
    )


def test_log_filter_leaves_ordinary_text_alone() -> None:
    assert redacted("Basic auth failed for tenant %s", "Acme") == (
        "Basic auth failed for tenant Acme"
    )


def test_root_handler_redacts_a_planted_bearer_token() -> None:
    (console,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        logging.getLogger("aquadash.test").warning("retrying with Bearer %s", TOKEN)
    finally:
        console.setStream(previous)
    assert stream.getvalue() == "retrying with Bearer [redacted]\n"


def test_log_filter_redacts_traceback_text() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("aquadash.test.traceback")
    logger.addHandler(handler)
    try:
        raise ValueError(f"bad header value 'Bearer {TOKEN}'")
    except ValueError:
        logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    assert "request failed" in stream.getvalue()
    assert TOKEN not in stream.getvalue()


def test_error_reports_use_the_secret_hiding_filter() -> None:
    assert isinstance(get_default_exception_reporter_filter(), SecretHidingReporterFilter)


def report_of(function: Callable[[], None]) -> str:
    try:
        function()
    except RuntimeError:
        return ExceptionReporter(None, *sys.exc_info(), is_email=True).get_traceback_html()
    raise AssertionError("no exception")


def test_error_report_hides_secret_names_in_undecorated_frames() -> None:
    def undecorated() -> None:
        client_secret = CANARY_SECRET  # noqa: F841
        raise RuntimeError("boom")

    html = report_of(undecorated)
    assert "client_secret" in html
    assert CANARY_SECRET not in html


def test_error_report_hides_secret_keys_and_bearer_values() -> None:
    def undecorated() -> None:
        sent = {"Authorization": f"Bearer {TOKEN}", "form": {"client_secret": CANARY_SECRET}}
        line = f"Authorization: Bearer {TOKEN}"  # noqa: F841
        raise RuntimeError(f"failed after sending {len(sent)} headers")

    html = report_of(undecorated)
    assert TOKEN not in html
    assert CANARY_SECRET not in html


def test_error_report_hides_secret_post_fields_without_a_decorator() -> None:
    request = RequestFactory().post("/x", {"client_secret": CANARY_SECRET, "note": "hello"})
    post = SecretHidingReporterFilter().get_post_parameters(request)
    assert post["client_secret"] == SecretHidingReporterFilter.cleansed_substitute
    assert post["note"] == "hello"


def test_error_mail_from_inside_the_zuora_client_holds_no_secret(
    make_tenant: Callable[..., Tenant], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ADMINS = ["ops@example.com"]
    tenant = make_tenant(auth_method="basic", identity="ops@acme.test")
    basic = base64.b64encode(f"ops@acme.test:{CANARY_SECRET}".encode()).decode()

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug after the Authorization header was built")

    monkeypatch.setattr(requests.Session, "request", explode)
    conn = tenant.zuora_connection()
    try:
        zuora.get_job(conn, job_id="0" * 32)
    except RuntimeError:
        logging.getLogger("django.request").error(
            "Internal Server Error: /t/acme/jobs/",
            exc_info=True,
            extra={"status_code": 500, "request": RequestFactory().get("/t/acme/jobs/")},
        )
    (report,) = mail.outbox
    assert "a bug after the Authorization header was built" in report.body
    for text in (report.body, *(content for content, _ in report.alternatives)):
        assert CANARY_SECRET not in text
        assert basic not in text
