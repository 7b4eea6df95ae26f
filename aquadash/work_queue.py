"""The work queue: the stored jobs of every tenant a person may see (or of one tenant), sorted,
filtered and paged on indexed columns, on the page and as CSV."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from aquadash import exports, zuora
from aquadash.access import tenant_required
from aquadash.forms import JOB_LINK, ZUORA_JOB_URL
from aquadash.models import JobSnapshot, Tenant
from aquadash.templatetags.aquadash import moment

PAGE_SIZE = 50
DEFAULT_DAYS = 7

# The columns, by the name the address uses: (heading, what they sort on).
COLUMNS = {
    "tenant": ("Tenant", ["tenant__name"]),
    "name": ("Name", ["name"]),
    "status": ("Status", ["status"]),
    "started": ("Started", ["started_at"]),
    "run": ("Run time", ["run_seconds"]),
    "records": ("Records", ["total_records"]),
    "batches": ("Batches done", ["batches_done", "batches_total"]),
    "checked": ("Last checked", ["last_fetched_at"]),
}
DEFAULT_SORT = "-started"
SHOWN = ["tenant", "job_id", "name", "status", "is_final", "gone_at", "started_at", "run_seconds",
         "total_records", "batches_done", "batches_total", "last_fetched_at",
         "last_fetched_by__username"]  # fmt: skip

CSV_HEADER = ["Tenant", "Job ID", "Name", "Status", "Started", "Run time (seconds)",
              "Total records", "Batches done", "Batches total", "Last checked",
              "Last fetched by", "Gone from Zuora"]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One job on the page, its times already shown in its own tenant's zone: one zone switch
    and two filters a row in the template cost more than the page's queries."""

    snapshot: JobSnapshot
    started: str
    checked: str


class QueueFilters(forms.Form):
    """What the filter form and the column headings put in the address."""

    tenant = forms.ChoiceField(required=False)
    status = forms.ChoiceField(
        required=False, choices=[("", "any")] + [(s, s) for s in zuora.JOB_STATUSES]
    )
    start = forms.DateField(required=False, label="Started from")
    end = forms.DateField(required=False, label="to")
    q = forms.CharField(required=False, max_length=200, label="Name or job ID")
    sort = forms.ChoiceField(
        required=False,
        label="Sort by",
        choices=[
            (f"{sign}{key}", f"{heading}, {order}")
            for key, (heading, _) in COLUMNS.items()
            for sign, order in (("-", "descending"), ("", "ascending"))
        ],
    )

    def __init__(self, data: dict, tenants: list[Tenant]) -> None:
        if "start" not in data:  # a first visit: the last week; an emptied field: any date
            data = {**data, "start": (timezone.localdate() - timedelta(DEFAULT_DAYS)).isoformat()}
        super().__init__({**data, "sort": data.get("sort") or DEFAULT_SORT})
        self.fields["tenant"].choices = [("", "all")] + [(t.slug, t.name) for t in tenants]


@require_GET
def all_jobs(request: HttpRequest) -> HttpResponseBase:
    """Every stored job of every tenant the person may see."""
    return _queue(request, list(Tenant.objects.visible_to(request.user)))


@require_GET
@tenant_required
def tenant_jobs(request: HttpRequest, tenant: Tenant) -> HttpResponseBase:
    """The stored jobs of one tenant."""
    return _queue(request, [tenant], page_tenant=tenant)


def _queue(
    request: HttpRequest, tenants: list[Tenant], *, page_tenant: Tenant | None = None
) -> HttpResponseBase:
    form = QueueFilters(request.GET.dict(), tenants)
    form.is_valid()  # a wrong field is shown beside it; the others still filter
    chosen = form.cleaned_data
    tenant = page_tenant or next((t for t in tenants if t.slug == chosen.get("tenant")), None)
    # Dates are days in the tenant's zone when there is one tenant, else in the site's.
    zone = tenant.zoneinfo if tenant else ZoneInfo(settings.TIME_ZONE)
    query = chosen.get("q", "").replace("\x00", "").strip()
    sort = chosen.get("sort") or DEFAULT_SORT
    shown = [tenant] if tenant else tenants
    matched = _filtered(chosen, query, zone)
    dated = bool(chosen.get("start") or chosen.get("end"))
    snapshots = _listed(shown, matched).order_by(*_ordering(sort, dated=dated))

    if request.GET.get("format") == "csv":
        name = f"{tenant.slug if tenant else 'all'}-jobs.csv"
        return exports.csv_response(name, CSV_HEADER, _csv_rows(snapshots, tenants))
    paginator = Paginator(snapshots, PAGE_SIZE)
    paginator.count = matched.filter(tenant__in=shown).count()  # see _listed
    page = paginator.get_page(request.GET.get("page"))
    by_id, zones = {t.pk: t for t in tenants}, {t.pk: t.zoneinfo for t in tenants}
    rows = []
    for snapshot in page:
        snapshot.tenant = by_id[snapshot.tenant_id]  # at hand already: no join for its columns
        own = zones[snapshot.tenant_id]
        rows.append(
            Row(snapshot, moment(snapshot.started_at, own), moment(snapshot.last_fetched_at, own))
        )
    # An emptied start stays in the links: it means any date, where none means the last week.
    filters = {k: v for k, v in form.data.items() if k in form.fields and (v or k == "start")}
    filters.pop("sort", None)
    context = {
        "form": form,
        "page_tenant": page_tenant,
        "page": page,
        "rows": rows,
        "sort": sort,
        "headings": [(key, heading) for key, (heading, _) in COLUMNS.items()],
        "filters": urlencode({**filters, "sort": sort}),
        "unsorted": urlencode(filters),
        "zone": zone,
        "short_id": bool(re.fullmatch(r"[0-9a-f]{1,7}", zuora.normalize_id(query))),
    }
    return render(request, "work_queue.html", context)


def _filtered(chosen: dict, query: str, zone: tzinfo) -> QuerySet:
    """The jobs the filters match, of any tenant: the count and the page ask for the tenants
    each its own way (_listed)."""
    snapshots = JobSnapshot.objects.all()
    if chosen.get("status"):
        snapshots = snapshots.filter(status=chosen["status"])
    if start := chosen.get("start"):
        snapshots = snapshots.filter(started_at__gte=datetime.combine(start, time(), zone))
    if end := chosen.get("end"):
        snapshots = snapshots.filter(
            started_at__lt=datetime.combine(end + timedelta(1), time(), zone)
        )
    if query:
        snapshots = snapshots.filter(_search(query))
    return snapshots


def _listed(tenants: list[Tenant], matched: QuerySet) -> QuerySet:
    """The tenants' matched jobs as a page or the CSV reads them: only the columns shown, and
    several tenants' jobs read in start order off the index of every tenant's starts, skipping
    other tenants' rows. Given the tenant column, SQLite takes the (tenant, start) index and
    sorts every matched job of the week for one page; "+ 0" keeps that index out of it. (The
    count wants that index: it answers from it alone.)"""
    listed = matched.select_related("last_fetched_by").only(*SHOWN)
    if len(tenants) == 1:
        return listed.filter(tenant=tenants[0])
    ids = [t.pk for t in tenants]
    return listed.alias(of_tenant=F("tenant_id") + 0).filter(of_tenant__in=ids)


def _ordering(sort: str, *, dated: bool) -> list:
    """The sort's columns, empty values last either way, then newest first for a stable page.

    Dates leave no job without a start time, so the start-time sort then says nothing of
    empty values: PostgreSQL keeps them first in a descending index, and asking for them last
    would sort every matched row instead of reading the first page off the index.
    """
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    fields = COLUMNS[key][1]
    if key == "started" and dated:
        return [*(F(f).desc() if descending else F(f).asc() for f in fields), "-pk"]
    order = [
        F(f).desc(nulls_last=True) if descending else F(f).asc(nulls_last=True) for f in fields
    ]
    return [*order, "-pk"]


def _search(query: str) -> Q:
    """A pasted job address, the start of a job ID (8 or more hexadecimal characters), or words
    that all appear in the job's name.

    An ID prefix is matched as a range on the (tenant, job_id) index rather than with LIKE,
    which most database collations cannot answer from an index; "g" sorts after every hex digit.
    """
    if pasted := ZUORA_JOB_URL.search(query) or JOB_LINK.search(query):
        return Q(job_id=pasted["job_id"].lower())
    prefix = zuora.normalize_id(query)
    if re.fullmatch(r"[0-9a-f]{8,32}", prefix):
        return Q(job_id__gte=prefix, job_id__lt=prefix + "g")
    words = re.split(r"[\s\-_,.]+", query)
    return Q(*(Q(name__icontains=word) for word in words if word))


def _csv_rows(snapshots: QuerySet, tenants: list[Tenant]) -> Iterator[list]:
    """The same columns as the page, each time in its own tenant's zone."""
    by_id = {t.pk: t for t in tenants}
    for snapshot in snapshots.iterator(chunk_size=2000):
        snapshot.tenant = by_id[snapshot.tenant_id]
        zone = snapshot.tenant.zoneinfo
        yield [
            snapshot.tenant.name,
            snapshot.job_id,
            snapshot.name,
            snapshot.status,
            exports.inert(snapshot.started_at, zone),
            snapshot.run_seconds,
            snapshot.total_records,
            snapshot.batches_done,
            snapshot.batches_total,
            exports.inert(snapshot.last_fetched_at, zone),
            snapshot.last_fetched_by.get_username() if snapshot.last_fetched_by else "",
            exports.inert(snapshot.gone_at, zone),
        ]
