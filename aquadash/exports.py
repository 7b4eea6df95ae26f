"""Lists as CSV files: the tenant's jobs, and the lookup and download trails in the admin.

Every text cell is made inert for spreadsheets: one that starts with =, +, -, @, a tab or a
carriage return would be read as a formula (a job name like =HYPERLINK("http://evil", "x")
comes from Zuora), so it gets a leading apostrophe, which Excel and LibreOffice show as text.
"""

import csv
from collections.abc import Iterable
from datetime import datetime, tzinfo

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from aquadash.results import FORMULA_STARTS


def inert(value: object, zone: tzinfo | None = None) -> object:
    """A cell as a spreadsheet will take it at its word: text never starts a formula, times
    are ISO 8601 in `zone` (else the current time zone), None is empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value, zone).isoformat(timespec="seconds")
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Line:
    """csv.writer's file: each write is one line, handed straight back."""

    def write(self, line: str) -> str:
        return line


def csv_response(
    filename: str, header: list[str], rows: Iterable[Iterable], *, zone: tzinfo | None = None
) -> StreamingHttpResponse:
    """The rows streamed as a CSV attachment, UTF-8 with a byte-order mark so that Excel reads
    accents right, however many rows there are; times in `zone` (else the current zone)."""
    writer = csv.writer(_Line())
    zone = zone or timezone.get_current_timezone()

    def lines() -> Iterable[str]:
        yield "\ufeff" + writer.writerow(header)
        for row in rows:
            yield writer.writerow([inert(value, zone) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
