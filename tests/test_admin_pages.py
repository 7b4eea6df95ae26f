"""The admin's pages as an admin reads them: names, times with their zones, sizes in bytes people
read, and exports in words."""

import csv
import io
import re

from django.contrib import admin
from django.test import Client

from aquadash.models import AuditEvent, Delivery, Download, JobSnapshot, Lookup, Tenant, Watch

# A date and a time, and what follows them.
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?(.{0,4})", re.DOTALL)
ZONE = re.compile(r"\s(UTC|[A-Z]{3,4}\b|[+-]\d{2})")


def english_plural(singular: str) -> str:
    head, of, rest = singular.partition(" of ")
    if of:  # "archive of result files": the head noun takes the plural
        return english_plural(head) + of + rest
    last = singular.split()[-1]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return singular + "es"
    if last.endswith("y") and last[-2] not in "aeiou":
        return singular[:-1] + "ies"
    return singular + "s"


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_every_model_in_the_admin_has_its_english_plural() -> None:
    wrong = {
        model._meta.label: model._meta.verbose_name_plural
        for model in admin.site._registry
        if model._meta.app_label == "aquadash"
        and model._meta.verbose_name_plural != english_plural(str(model._meta.verbose_name))
    }
    assert wrong == {}


def test_the_admin_index_lists_watches(admin_client: Client) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert ">Watches<" in html and "Watchs" not in html


def admin_pages(trail: Tenant) -> list[str]:
    """Every aquadash change list, and the page of each row in them."""
    rows = [
        trail,
        JobSnapshot.objects.get(tenant=trail),
        Lookup.objects.get(tenant=trail),
        Download.objects.get(tenant=trail),
        *AuditEvent.objects.filter(tenant=trail),
        Watch.objects.get(tenant=trail),
        *Delivery.objects.filter(watch__tenant=trail),
    ]
    lists = {f"/admin/aquadash/{row._meta.model_name}/" for row in rows}
    return sorted(lists) + [
        f"/admin/aquadash/{row._meta.model_name}/{row.pk}/change/" for row in rows
    ]


def test_every_time_in_the_admin_names_its_zone(admin_client: Client, admin_trail: Tenant) -> None:
    unzoned = []
    for url in admin_pages(admin_trail):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = re.sub(r"<[^>]+>", " ", response.content.decode())
        unzoned += [f"{url}: {m[0]!r}" for m in TIME.finditer(html) if not ZONE.match(m[1])]
    assert unzoned == []


def test_the_download_list_shows_sizes_and_counts_people_read(
    admin_client: Client, admin_trail: Tenant
) -> None:
    html = admin_client.get("/admin/aquadash/download/").content.decode()
    assert '<td class="field-size">1.3\xa0GB<br>12,345,678 records</td>' in html
    assert "1400000000" not in html


def test_the_download_list_says_which_part_was_taken_and_from_where(
    admin_client: Client, admin_trail: Tenant
) -> None:
    Download.objects.filter(tenant=admin_trail).update(
        kind=Download.Kind.BATCH, portion="segments 2–3, first 4 records", from_archive=True
    )
    html = admin_client.get("/admin/aquadash/download/").content.decode()
    assert "segments 2–3, first 4 records from the archive" in html
    [header, row] = csv_rows(admin_client.get("/admin/aquadash/download/export.csv"))
    assert dict(zip(header, row, strict=True))["portion"] == "segments 2–3, first 4 records"


def test_a_download_page_shows_its_size_in_words_and_exactly(
    admin_client: Client, admin_trail: Tenant
) -> None:
    download = Download.objects.get(tenant=admin_trail)
    html = admin_client.get(f"/admin/aquadash/download/{download.pk}/change/").content.decode()
    assert "1.3\xa0GB (1,400,000,000 bytes)" in html
    assert "12,345,678" in html
    assert "1400000000" not in html and "12345678" not in html


def test_the_audit_trail_says_download_sizes_in_words(admin_trail: Tenant) -> None:
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DOWNLOAD, tenant=admin_trail)
    assert event.detail.endswith(", 1.3 GB sent")


def test_a_download_page_names_the_variant_in_words(
    admin_client: Client, admin_trail: Tenant
) -> None:
    download = Download.objects.get(tenant=admin_trail)
    html = admin_client.get(f"/admin/aquadash/download/{download.pk}/change/").content.decode()
    assert "CSV for Excel" in html
    assert not re.search(r">\s*excel\s*<", html)


def test_the_download_export_names_every_choice_in_words(
    admin_client: Client, admin_trail: Tenant
) -> None:
    [header, row] = csv_rows(admin_client.get("/admin/aquadash/download/export.csv"))
    exported = dict(zip(header, row, strict=True))
    assert exported["kind"] == "whole job (zip)"
    assert exported["variant"] == "CSV for Excel"
    assert exported["outcome"] == "complete, but the record count does not match"


def test_the_audit_export_names_the_kind_in_words(
    admin_client: Client, admin_trail: Tenant
) -> None:
    table = csv_rows(admin_client.get("/admin/aquadash/auditevent/export.csv"))
    kinds = {row[table[0].index("kind")] for row in table[1:]}
    assert kinds == {"result data downloaded", "connection test failed"}
