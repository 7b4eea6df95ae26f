"""Keeping secrets out of error reports and log lines.

`@sensitive_variables` protects only the functions that remember to use it; these filters are the
net under everything else. The error-report filter hides, in every traceback frame, variables and
dictionary keys whose names look secret, and POST fields such as the tenant form's secret. The
logging filter rewrites `Bearer …`, `Basic …` and `client_secret=…` wherever they appear.
"""

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from django.views.debug import SafeExceptionReporterFilter

SECRET_NAME = re.compile(
    r"secret|passw|token|authori[sz]ation|credential|headers|api_?key|cookie|signature", re.I
)
SECRET_IN_TEXT = re.compile(
    r"(?P<scheme>\b(?:bearer|basic)\s+)[\w.~+/=-]{8,}"
    r"|(?P<field>\b(?:client_secret|password|access_token|apiSecretAccessKey)[\"']?\s*[=:]\s*"
    r"[\"']?)[^\s&\"',;]+"
    r"|\baqd_[A-Za-z0-9]{8,}",  # an aquadash API token, wherever it appears
    re.I,
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return SECRET_IN_TEXT.sub(lambda m: (m["scheme"] or m["field"] or "") + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites credentials in a record's message and traceback text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class SecretHidingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus hiding by name in every frame, not only in decorated functions."""

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|CREDENTIAL", re.I
    )

    def get_traceback_frame_variables(
        self, request: HttpRequest | None, tb_frame: Any
    ) -> Iterable[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        if not self.is_active(request):
            return variables
        return [
            (name, self.cleansed_substitute if SECRET_NAME.search(name) else self._cleanse(value))
            for name, value in variables
        ]

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        return self._cleanse_secret_keys(request, super().get_post_parameters(request))

    def get_cleansed_multivaluedict(self, request: HttpRequest | None, multivaluedict: Any) -> Any:
        cleansed = super().get_cleansed_multivaluedict(request, multivaluedict)
        return self._cleanse_secret_keys(request, cleansed)

    def _cleanse_secret_keys(self, request: HttpRequest | None, values: Any) -> Any:
        if not self.is_active(request) or not isinstance(values, MultiValueDict):
            return values
        secret_keys = [key for key in values if SECRET_NAME.search(str(key))]
        return self._cleanse_multivaluedict(values, secret_keys) if secret_keys else values

    def _cleanse(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, MultiValueDict) or not isinstance(value, Mapping) or depth > 3:
            return value
        return {
            key: self.cleansed_substitute
            if SECRET_NAME.search(str(key))
            else self._cleanse(item, depth + 1)
            for key, item in value.items()
        }
