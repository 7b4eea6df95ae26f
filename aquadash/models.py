"""What aquadash stores: the Zuora tenants people look jobs up in."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connection, models
from django.db.models import Case, Max, Value, When
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.debug import sensitive_variables

from aquadash import allowance, audit, encryption, metrics, zuora
from aquadash.shared_cache import shared_cache

logger = logging.getLogger(__name__)

CUSTOM_ENVIRONMENT = "custom"

# Zuora's answers about one job or file: the tenant's connection worked.
ANSWERS_ABOUT_ONE_REQUEST = (
    zuora.JobNotFound,
    zuora.FileNotFound,
    zuora.FileTooLarge,
    zuora.UnknownPartner,
    zuora.RequestRejected,
)
ANSWERED = "Zuora answered a page, download or watch."
CONTACT_NOTED_EVERY = 60  # seconds


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "%(value)s is not an IANA time zone name such as America/Los_Angeles or UTC.",
            params={"value": value},
        ) from None


class Role(models.TextChoices):
    """What a group granted a tenant may do there; each role may do all that the one before may."""

    VIEWER = "viewer"
    DOWNLOADER = "downloader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class TenantQuerySet(models.QuerySet):
    def visible_to(
        self, user: AbstractBaseUser | AnonymousUser, role: Role = Role.VIEWER
    ) -> "TenantQuerySet":
        """Active tenants where the user's best grant is at least `role`: all for superusers
        (as admin), else through their groups' grants. Each carries the user's role on it
        (`Tenant.user_role`), so pages need no query to know it."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.filter(is_active=True).annotate(role_rank=Value(Role.ADMIN.rank))
        # A join and a group, not an Exists() subquery: the ORM builds it in half the time, on
        # every page. Filtered first, so the best grant is taken among the user's groups only.
        best = Max(Case(*(When(grants__role=each, then=each.rank) for each in Role), default=-1))
        return (
            self.filter(grants__group__user=user, is_active=True)
            .annotate(role_rank=best)
            .filter(role_rank__gte=Role(role).rank)
        )


class Tenant(models.Model):
    """One Zuora tenant and the credentials aquadash uses for it.

    The secret (OAuth client secret or password) is stored only encrypted, in `encrypted_secret`;
    `set_secret` writes it and `zuora_connection` is the one place that decrypts it.
    """

    AUTH_METHODS = [("oauth", "OAuth client"), ("basic", "Username and password")]

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(
        max_length=50, unique=True, help_text="Used in page addresses: /t/this-slug/jobs/…"
    )
    environment = models.CharField(
        max_length=32,
        choices=[(key, label) for key, (label, _) in zuora.ENVIRONMENTS.items()]
        + [(CUSTOM_ENVIRONMENT, "Other host (listed in ZUORA_EXTRA_HOSTS)")],
    )
    base_url = models.CharField(
        "base URL",
        max_length=200,
        blank=True,
        help_text="Only for “Other host”: the host's whole URL, with https:// (or http:// where "
        "ZUORA_ALLOW_HTTP allows it) and no path, such as http://127.0.0.1:8765 for the simulator. "
        "Its host and port must be listed in ZUORA_EXTRA_HOSTS by whoever runs aquadash.",
    )
    auth_method = models.CharField(
        max_length=10,
        choices=AUTH_METHODS,
        default="oauth",
        help_text="Prefer an OAuth client: the passwords of Zuora API users can expire, and "
        "then aquadash can no longer sign in for this tenant. Zuora recommends OAuth too.",
    )
    identity = models.CharField(
        "client ID or username",
        max_length=255,
        help_text="The OAuth client ID, or the username for username-and-password sign-in.",
    )
    encrypted_secret = models.TextField(editable=False)
    # Kept as the 32 hexadecimal digits Zuora shows; the token call gets it as a UUID.
    entity_id = models.CharField(
        "entity ID",
        max_length=36,
        blank=True,
        validators=[
            RegexValidator(
                r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})$",
                "An entity ID is 32 hexadecimal digits, with or without the hyphens of a UUID.",
            )
        ],
        help_text="Multi-entity tenants only: sent as Zuora-Entity-Ids. 32 hexadecimal digits "
        "as Zuora shows them, or the same as a UUID with hyphens.",
    )
    org_ids = models.CharField(
        "org IDs",
        max_length=255,
        blank=True,
        validators=[
            RegexValidator(
                r"^\s*[0-9A-Za-z-]+(?:\s*,\s*[0-9A-Za-z-]+)*\s*$",
                "Org IDs are letters, digits and hyphens, separated by commas.",
            )
        ],
        help_text="Multi-Org tenants only: sent as Zuora-Org-Ids, comma-separated.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="America/Los_Angeles",
        validators=[validate_time_zone],
        help_text="The tenant's time zone in Zuora, in which aquadash reads job start times "
        "that carry no offset (jobs not submitted with dateTimeUtc). US tenants are usually "
        "America/Los_Angeles, EU tenants UTC.",
    )
    is_active = models.BooleanField("active", default=True)
    groups = models.ManyToManyField(
        Group,
        through="Grant",
        blank=True,
        related_name="tenants",
        verbose_name="groups granted this tenant",
        help_text="Members of these groups may look up this tenant's jobs, each group in its "
        "role. Superusers see all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by Test connection and by every call pages, downloads and watches make (note_answer).
    last_contact_at = models.DateTimeField(
        "last contact", null=True, blank=True, editable=False,
        help_text="When Zuora last answered aquadash for this tenant, or failed to: a Test "
        "connection, or a page, download or watch (noted at most once a minute while nothing "
        "changes).",
    )  # fmt: skip
    last_contact_ok = models.BooleanField("worked", null=True, editable=False)
    last_contact_message = models.CharField(
        "what Zuora said", max_length=500, blank=True, editable=False
    )
    # A Slack-compatible incoming webhook for watch notifications. Its URL is a secret (anyone
    # holding it can post to the channel), so it is stored encrypted like the Zuora secret.
    encrypted_webhook_url = models.TextField(blank=True, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def user_role(self) -> Role:
        """The role of the person asking, on a tenant that `visible_to` gave."""
        return list(Role)[self.role_rank]

    @property
    def gives_files(self) -> bool:
        """Whether the person asking may have its result data: files, previews, exports."""
        return self.role_rank >= Role.DOWNLOADER.rank

    def clean(self) -> None:
        # One stored form, whichever was typed.
        self.entity_id = self.entity_id.replace("-", "").lower()
        self.org_ids = ",".join(part.strip() for part in self.org_ids.split(",") if part.strip())
        if self.environment != CUSTOM_ENVIRONMENT:
            if self.base_url:
                raise ValidationError(
                    {
                        "base_url": "A base URL is only used with “Other host”: clear it or choose "
                        "that environment."
                    }
                )
            return
        if not self.base_url:
            raise ValidationError({"base_url": "“Other host” needs a base URL."})
        if "://" not in self.base_url:
            raise ValidationError(
                {
                    "base_url": "Type the whole URL, starting with https:// (or http://), such as "
                    "http://127.0.0.1:8765 for the simulator."
                }
            )
        try:
            self.base_url = zuora.check_base_url(
                self.base_url, extra_hosts=settings.ZUORA_EXTRA_HOSTS
            )
        except zuora.HostNotAllowed as exc:
            raise ValidationError({"base_url": exc.message}) from None
        if self.base_url.startswith("http://") and not settings.ZUORA_ALLOW_HTTP:
            raise ValidationError(
                {
                    "base_url": "Plain http:// would send the secret unencrypted; use https:// "
                    "(http is allowed only for development, with ZUORA_ALLOW_HTTP)."
                }
            )

    @property
    def base_url_resolved(self) -> str:
        if self.environment == CUSTOM_ENVIRONMENT:
            return self.base_url
        return zuora.ENVIRONMENTS[self.environment][1]

    @property
    def environment_label(self) -> str:
        if self.environment == CUSTOM_ENVIRONMENT:
            return self.base_url
        return zuora.ENVIRONMENTS[self.environment][0]

    @property
    def zoneinfo(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @sensitive_variables()
    def set_secret(self, secret: str) -> None:
        self.encrypted_secret = encryption.encrypt(secret)

    @sensitive_variables()
    def set_webhook_url(self, url: str) -> None:
        self.encrypted_webhook_url = encryption.encrypt(url) if url else ""

    @sensitive_variables()
    def webhook_url(self) -> str:
        """The chat webhook's URL, or "" when the tenant has none. Raises CredentialUnreadable."""
        if not self.encrypted_webhook_url:
            return ""
        return encryption.decrypt(self.encrypted_webhook_url, tenant=self.name)

    @sensitive_variables()
    def zuora_connection(self) -> zuora.Connection:
        """Raises CredentialUnreadable (a ZuoraError) when the stored secret cannot be read."""
        if not self.encrypted_secret:
            raise encryption.CredentialUnreadable(
                f"Tenant {self.name} has no stored Zuora secret. Ask an admin to enter one."
            )
        try:
            secret = encryption.decrypt(self.encrypted_secret, tenant=self.name)
        except encryption.CredentialUnreadable:
            logger.warning("The stored secret of tenant %s cannot be decrypted", self.slug)
            AuditEvent.record(
                AuditEvent.Kind.CREDENTIALS_UNREADABLE,
                tenant=self,
                detail="The keys changed or the stored text was altered.",
                once_per=300,
            )
            raise
        return zuora.Connection(
            base_url=self.base_url_resolved,
            credentials=zuora.Credentials(
                method=self.auth_method, identity=self.identity, secret=secret
            ),
            tenant=self.name,
            zone=self.zoneinfo,
            entity_id=self.entity_id,
            org_ids=self.org_ids,
            extra_hosts=settings.ZUORA_EXTRA_HOSTS,
            session=zuora.proxied_session(settings.ZUORA_PROXY),
            token_cache=encryption.EncryptedCache(shared_cache),
            connect_timeout=settings.ZUORA_CONNECT_TIMEOUT,
            read_timeout=settings.ZUORA_READ_TIMEOUT,
            on_allowance=allowance.recorder(self.pk) if self.pk else None,
            on_call=metrics.zuora_calls(self.slug),
            on_answer=self.note_answer if self.pk else None,
        )

    def check_connection(self, *, by: AbstractBaseUser | None = None) -> tuple[bool, str]:
        """Ask Zuora whether the stored credentials work; records and returns the answer."""
        try:
            ok, message = True, zuora.check_credentials(self.zuora_connection())
            message = f"{message} {allowance.summary(self.pk)}".strip()
        except zuora.ZuoraError as exc:
            ok, message = False, exc.message
        self.record_contact(ok, message)
        if not ok:
            AuditEvent.record(
                AuditEvent.Kind.CONNECTION_TEST_FAILED,
                user=by,
                username="manage.py" if by is None else "",
                tenant=self,
                detail=message,
            )
        return ok, message

    def note_answer(self, error: zuora.ZuoraError | None) -> None:
        """How a call to Zuora ended, kept as the last contact: written at once when it went
        from working to failing or back, else at most once a minute, so that a busy tenant
        costs no database write per call."""
        if isinstance(error, zuora.InvalidId):  # refused before anything was sent
            return
        ok = error is None or isinstance(error, ANSWERS_ABOUT_ONE_REQUEST)
        key = f"tenant-contact:{self.pk}"
        if ok == self.last_contact_ok and not shared_cache.add(key, 1, CONTACT_NOTED_EVERY):
            return
        shared_cache.set(key, 1, CONTACT_NOTED_EVERY)
        self.record_contact(ok, ANSWERED if ok else error.message)

    def record_contact(self, ok: bool, message: str) -> None:
        self.last_contact_at = timezone.now()
        self.last_contact_ok = ok
        self.last_contact_message = message[:500]
        # Not save(): that would also write the other fields, perhaps over an admin's edit.
        Tenant.objects.filter(pk=self.pk).update(
            last_contact_at=self.last_contact_at,
            last_contact_ok=ok,
            last_contact_message=self.last_contact_message,
        )


class Grant(models.Model):
    """A tenant granted to a group, in a role. A group's members have the best role any of
    their groups was granted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="grants")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="grants")
    # Downloader, what every grant gave before there were roles: `tenant.groups.add()` and the
    # tenant command keep meaning what they meant.
    role = models.CharField(
        max_length=16,
        choices=Role,
        default=Role.DOWNLOADER,
        help_text="Viewer: job pages and status, no result data. Downloader: also result files, "
        "previews and exports. Admin: also this tenant's settings, for staff users.",
    )

    class Meta:
        ordering = ["group__name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "group"], name="one_grant_per_group")
        ]

    def __str__(self) -> str:
        return str(self.group)  # the admin shows it beside the grant's own fields


class JobSnapshot(models.Model):
    """The last thing Zuora said about a job. It outlives Zuora's 180-day retention."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs")
    job_id = models.CharField("job ID", max_length=32)
    name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32)
    is_final = models.BooleanField(default=False)
    raw = models.JSONField(
        help_text="The job exactly as Zuora last returned it: its times without an offset are "
        "in the tenant's time zone."
    )
    track_id = models.CharField("track ID", max_length=64, blank=True)
    request_id = models.CharField(
        "request ID",
        max_length=64,
        blank=True,
        help_text="Zuora-Request-Id of that answer, for Zuora support.",
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_fetched_at = models.DateTimeField()
    last_fetched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    gone_at = models.DateTimeField(
        null=True, blank=True, help_text="When Zuora first answered that the job does not exist."
    )
    # Zuora reports only when a job started; this is when aquadash first saw each batch in
    # each status. Written under the snapshot's row lock (jobs.store_job), so the first to see
    # a status sets its time, whichever server or worker that is.
    timeline = models.JSONField(
        default=dict,
        blank=True,
        help_text="By batch ID, by status: when aquadash first saw the batch in it (ISO 8601).",
    )
    # Kept on the snapshot, not in a table of their own, so the job page reads them for free.
    record_counts = models.JSONField(
        default=dict,
        blank=True,
        help_text="By batch ID: the records aquadash counted in the batch's whole result "
        "(counted), Zuora's recordCount (expected) and when (checked_at). Zuora calls a "
        "difference a RECORD COUNT MISMATCH.",
    )
    # The job's largest result file downloaded whole as Zuora made it: what the job page and
    # the "large download" page scale their size estimates from (downloads.estimate), kept
    # here so that neither reads the download trail.
    sample_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Bytes of the job's largest file downloaded whole."
    )
    sample_records = models.BigIntegerField(
        null=True, blank=True, help_text="Records counted in that file, when they were."
    )
    # The work queue's columns, kept beside `raw` so that 100,000 jobs sort and filter on
    # indexes; written with `raw`, in one place (jobs.queue_columns).
    started_at = models.DateTimeField(null=True, blank=True, help_text="Zuora's startTime.")
    run_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="From the start until aquadash first saw every batch finished; empty while "
        "the job runs, or when aquadash first saw it already finished.",
    )
    total_records = models.BigIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "job_id"], name="one_snapshot_per_job")
        ]
        indexes = [
            models.Index(fields=["tenant", "-last_fetched_at"], name="snapshot_recent"),
            models.Index(fields=["tenant", "status", "-last_fetched_at"], name="snapshot_status"),
            models.Index(fields=["tenant", "-started_at"], name="snapshot_started"),
            models.Index(fields=["-started_at"], name="snapshot_started_all"),
            models.Index(fields=["run_seconds"], name="snapshot_run"),
            models.Index(fields=["total_records"], name="snapshot_records"),
            models.Index(fields=["batches_done", "batches_total"], name="snapshot_batches"),
            models.Index(fields=["name"], name="snapshot_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'AQuA job'} {self.job_id}"

    @property
    def run_time(self) -> timedelta | None:
        return None if self.run_seconds is None else timedelta(seconds=self.run_seconds)

    @classmethod
    def keep_sample(cls, tenant: Tenant, job_id: str, size: int, records: int | None) -> None:
        """Keep a result file's size and records as its job's sample for size estimates, when
        it is the largest yet: one UPDATE, so two files noted at once keep the larger."""
        cls.objects.filter(tenant=tenant, job_id=job_id).filter(
            models.Q(sample_bytes__isnull=True) | models.Q(sample_bytes__lt=size)
        ).update(sample_bytes=size, sample_records=records)

    def job(self) -> zuora.Job:
        """The stored answer as a Job. Read snapshots through `tenant.jobs` where the tenant is
        at hand: the tenant's zone is needed here, and that way it costs no query."""
        return zuora.parse_job(
            self.raw, zone=self.tenant.zoneinfo, track_id=self.track_id, request_id=self.request_id
        )

    def mark_gone(self) -> None:
        if self.gone_at is None:
            self.gone_at = timezone.now()
            self.save(update_fields=["gone_at"])


@dataclass
class RecentJob:
    """A job in someone's recent lookups."""

    tenant: "Tenant"
    job_id: str
    job_name: str
    job_status: str
    outcome: str  # of the lookup, shown when there is no status
    at: datetime  # when it was looked up


class LookupQuerySet(models.QuerySet):
    def recent_for(
        self, user: AbstractBaseUser, tenants: list["Tenant"], limit: int = 10
    ) -> list["RecentJob"]:
        """The user's latest lookups, one per job, in tenants the user may still see (the list
        the page already holds, so no tenant is read twice), each job as it is now."""
        visible = {tenant.pk: tenant for tenant in tenants}
        lookups = self.filter(user=user, tenant__in=visible).order_by("-at")
        recent: dict[tuple[int, str], RecentJob] = {}
        for tenant_id, job_id, name, status, outcome, at in lookups.values_list(
            "tenant_id", "job_id", "job_name", "job_status", "outcome", "at"
        )[: limit * 5]:
            if (tenant_id, job_id) not in recent and len(recent) < limit:
                recent[tenant_id, job_id] = RecentJob(
                    visible[tenant_id], job_id, name, status, outcome, at
                )
        if not recent:
            return []
        # Plain SQL: the ORM took five times as long to build this query as to run it, on the
        # page everyone opens first. Only strings and numbers come back, nothing to convert;
        # the values go as parameters, only their placeholders into the text.
        tenant_ids, job_ids = (
            {tenant_id for tenant_id, _ in recent},
            {job_id for _, job_id in recent},
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT tenant_id, job_id, name, status FROM {JobSnapshot._meta.db_table} "  # noqa: S608
                f"WHERE tenant_id IN ({', '.join(['%s'] * len(tenant_ids))}) "
                f"AND job_id IN ({', '.join(['%s'] * len(job_ids))})",
                [*tenant_ids, *job_ids],
            )
            current = cursor.fetchall()
        for tenant_id, job_id, name, status in current:
            if job := recent.get((tenant_id, job_id)):
                job.job_name, job.job_status = name, status
        return list(recent.values())


class Lookup(models.Model):
    """Who opened which job page, when, and what they saw: the audit trail of lookups."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="lookups"
    )
    username = models.CharField(max_length=150, help_text="Kept if the user is deleted.")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="lookups")
    job_id = models.CharField("job ID", max_length=64)
    job_name = models.CharField(max_length=255, blank=True)
    job_status = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=200)
    at = models.DateTimeField(auto_now_add=True)

    objects = LookupQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "-at"], name="lookup_recent")]

    def __str__(self) -> str:
        when = date_format(timezone.localtime(self.at), "SHORT_DATETIME_FORMAT")
        return f"{self.username} looked up {self.job_id} at {when}"

    @classmethod
    def record(
        cls,
        user: AbstractBaseUser,
        tenant: Tenant,
        job_id: str,
        *,
        job: zuora.Job | None = None,
        gone: bool = False,
        error: zuora.ZuoraError | None = None,
    ) -> None:
        """A page view: the `job` it showed (`gone` when from storage after Zuora forgot it),
        or the `error` it showed instead."""
        if error is not None:
            outcome = f"failed: {error.summary}"
        elif gone:
            outcome = "shown from storage (gone from Zuora)"
        else:
            outcome = "shown"
        cls.objects.create(
            user=user,
            username=user.get_username(),
            tenant=tenant,
            job_id=job_id[:64],
            job_name=job.name[:255] if job else "",
            job_status=job.status[:32] if job else "",
            outcome=outcome,
        )


class Download(models.Model):
    """Who fetched which result data, when, how much of it and how it ended: the download and
    preview audit trail, written when a download starts and completed when it ends."""

    class Kind(models.TextChoices):
        FILE = "file", "result file"
        BATCH = "batch", "whole batch"
        JOB = "job", "whole job (zip)"
        PREVIEW = "preview", "preview"

    class Outcome(models.TextChoices):
        STARTED = "started", "started"  # still streaming, or the server died mid-way
        COMPLETE = "complete", "complete"
        MISMATCH = "mismatch", "complete, but the record count does not match"
        BROKEN = "broken", "broken off: Zuora's stream failed"
        CANCELLED = "cancelled", "cancelled by the browser"
        FAILED = "failed", "failed before it started"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="downloads"
    )
    username = models.CharField(max_length=150, help_text="Kept if the user is deleted.")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="downloads")
    job_id = models.CharField("job ID", max_length=32)
    batch_id = models.CharField("batch ID", max_length=32, blank=True)
    file_id = models.CharField(
        "file ID", max_length=32, blank=True, help_text="Blank for a whole batch."
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    portion = models.CharField(
        max_length=60,
        blank=True,
        help_text="Blank for all of it; else the part taken, such as 'first 1,000 records'.",
    )
    # The variants in the words of the download links, for the trails people read.
    VARIANTS = {"csv": "CSV", "excel": "CSV for Excel", "xlsx": "xlsx"}
    variant = models.CharField(
        max_length=10,
        blank=True,
        choices=list(VARIANTS.items()),
        help_text="Blank for the file as Zuora made it.",
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    bytes_sent = models.BigIntegerField(default=0)
    records_counted = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.STARTED)
    detail = models.CharField(max_length=500, blank=True)
    from_archive = models.BooleanField(
        default=False, help_text="Served from aquadash's archive, without asking Zuora."
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "job_id", "-started_at"], name="download_job")]

    def __str__(self) -> str:
        return f"{self.username}: {self.get_kind_display()} of job {self.job_id}"

    @property
    def variant_label(self) -> str:
        return self.VARIANTS.get(self.variant, self.variant)

    @property
    def what(self) -> str:
        """What was taken, in the trails' words: "whole batch (CSV for Excel), first 1,000
        records, from the archive"."""
        what = self.get_kind_display() + (f" ({self.variant_label})" if self.variant else "")
        what += f", {self.portion}" if self.portion else ""
        return what + (" from the archive" if self.from_archive else "")

    @classmethod
    def start(
        cls,
        user: AbstractBaseUser,
        tenant: Tenant,
        job_id: str,
        *,
        kind: str,
        batch_id: str = "",
        file_id: str = "",
        variant: str = "",
        portion: str = "",
    ) -> "Download":
        return cls.objects.create(
            user=user,
            username=user.get_username(),
            tenant=tenant,
            job_id=job_id,
            batch_id=batch_id,
            file_id=file_id,
            kind=kind,
            variant=variant,
            portion=portion,
        )

    def finish(self, outcome: str, *, detail: str = "", records: int | None = None) -> None:
        self.outcome, self.detail = outcome, detail[:500]
        self.records_counted = records
        self.finished_at = timezone.now()
        self.save(
            update_fields=[
                *("outcome", "detail", "records_counted", "finished_at", "bytes_sent"),
                "from_archive",
            ]
        )
        metrics.download_ended(self.tenant.slug, self.kind, outcome, self.bytes_sent)
        size = filesizeformat(self.bytes_sent).replace("\xa0", " ")  # plain text, for CSV too
        AuditEvent.record(
            AuditEvent.Kind.DOWNLOAD,
            user=self.user,
            username=self.username,
            tenant=self.tenant,
            target=f"job {self.job_id}" + (f" file {self.file_id}" if self.file_id else ""),
            detail=f"{self.what}: {self.get_outcome_display()}, {size} sent",
        )


class AuditEvent(models.Model):
    """The security audit trail: append-only, and never holding a secret's value.

    Page views are in Lookup and result data in Download; this holds what a security review
    asks about: credentials changed or unreadable, failed connection tests, tenants refused,
    sign-in lockouts and downloads. Each event is also logged as a JSON line (audit.py).
    """

    class Kind(models.TextChoices):
        CREDENTIALS_CHANGED = "credentials_changed", "credentials changed"
        CREDENTIALS_UNREADABLE = "credentials_unreadable", "stored credentials unreadable"
        CONNECTION_TEST_FAILED = "connection_test_failed", "connection test failed"
        ACCESS_DENIED = "access_denied", "tenant access denied"
        LOCKED_OUT = "locked_out", "sign-in locked out"
        DOWNLOAD = "download", "result data downloaded"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        API_USE = "api_use", "API token used"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept if the user goes.")
    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    tenant_name = models.CharField(max_length=100, blank=True, help_text="Kept if it goes.")
    target = models.CharField(max_length=200, blank=True, help_text="Job, file or field.")
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "-at"], name="audit_kind")]

    def __str__(self) -> str:
        when = date_format(timezone.localtime(self.at), "DATETIME_FORMAT")
        return f"{when} {self.get_kind_display()} {self.username}".strip()

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are never deleted.")

    @classmethod
    def record(
        cls,
        kind: str,
        *,
        user: AbstractBaseUser | AnonymousUser | None = None,
        username: str = "",
        tenant: Tenant | None = None,
        target: str = "",
        detail: str = "",
        once_per: int = 0,
    ) -> None:
        """Append an event; with `once_per` seconds, at most one such event per user, tenant
        and target in that time (a poll every 5 seconds is one denial, not hundreds)."""
        known = user if user is not None and user.is_authenticated else None
        if once_per:
            key = f"audit:{kind}:{known.pk if known else username}:{tenant.pk if tenant else ''}"
            if not shared_cache.add(f"{key}:{target}", 1, once_per):
                return
        event = cls.objects.create(
            kind=kind,
            user=known,
            username=(known.get_username() if known else username)[:150],
            tenant=tenant,
            tenant_name=tenant.name if tenant else "",
            target=target[:200],
            detail=detail[:500],
        )
        audit.write(
            at=event.at,
            kind=event.kind,
            user=event.username,
            tenant=tenant.slug if tenant else "",
            target=event.target,
            detail=event.detail,
        )


class WatchQuerySet(models.QuerySet):
    def open(self) -> "WatchQuerySet":
        return self.filter(ended_at=None)


class Watch(models.Model):
    """Someone waiting to be told that a job has ended. The worker checks the job (see
    watching.py) until it is final, the person stops watching or the watch expires."""

    class End(models.TextChoices):
        FINAL = "final", "the job ended"
        GONE = "gone", "Zuora does not know the job"
        EXPIRED = "expired", "still running when the watch expired"
        UNWATCHED = "unwatched", "stopped watching"
        REVOKED = "revoked", "no longer allowed to see the tenant"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="watches")
    job_id = models.CharField("job ID", max_length=32)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watches"
    )
    link = models.URLField(max_length=300, help_text="The job page, as the watcher opened it.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    next_check_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end = models.CharField(max_length=10, choices=End.choices, blank=True)
    job_name = models.CharField(max_length=255, blank=True)
    job_status = models.CharField(max_length=32, blank=True, help_text="When the watch ended.")

    objects = WatchQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "watches"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "job_id", "user"],
                condition=models.Q(ended_at=None),
                name="one_open_watch_per_person",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_check_at"], condition=models.Q(ended_at=None), name="watch_due"
            ),
            models.Index(fields=["tenant", "job_id"], name="watch_job"),
        ]

    def __str__(self) -> str:
        return f"{self.user} watching {self.job_id}"


class Delivery(models.Model):
    """One notification that a watch ended. The row is what makes it go out once: it is created
    once per watch and channel, and a worker sends it only after claiming it."""

    class Channel(models.TextChoices):
        EMAIL = "email", "e-mail"
        WEBHOOK = "webhook", "chat webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        SENDING = "sending", "being sent"
        SENT = "sent", "sent"
        FAILED = "failed", "could not be sent"

    watch = models.ForeignKey(Watch, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(
        max_length=254, help_text="The address, or the webhook's host (its URL is a secret)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last took it to send."
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["watch", "channel"], name="one_delivery_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.recipient}: {self.get_status_display()}"


class ApiToken(models.Model):
    """A person's key to the read-only JSON API, for the tenants they chose among their grants.

    Only a SHA-256 of the token is stored: it is 40 random characters, so no salt or slow hash
    is needed, and the hash is what the API looks a presented token up by. The token itself is
    shown once, when it is made (see api.py).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, such as “Power Query”.")
    tenants = models.ManyToManyField(Tenant, related_name="api_tokens")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False, help_text="Its first characters.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @classmethod
    def revoke_all_of(cls, user: AbstractBaseUser, *, why: str) -> None:
        """Revoke every live token of the user, with one audit event if there were any."""
        revoked = cls.objects.filter(user=user, revoked_at=None).update(revoked_at=timezone.now())
        if revoked:
            AuditEvent.record(
                AuditEvent.Kind.API_TOKEN_REVOKED,
                user=user,
                target=f"all {revoked} of {user.get_username()}'s tokens",
                detail=why,
            )

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and not self.is_expired and self.user.is_active


# --- The archive of result files (archive.py) ---------------------------------------------------


class ArchivePolicy(models.Model):
    """What aquadash keeps of a tenant's result files, chosen by an admin (none by default)."""

    class Keep(models.TextChoices):
        NOTHING = "nothing", "nothing (only jobs someone asks to keep)"
        WATCHED = "watched", "the jobs someone watches"
        SESSIONS = "sessions", "every completed job of the stateful sessions listed below"
        ALL = "all", "every completed job aquadash sees"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="archive_policy")
    keep = models.CharField(max_length=10, choices=Keep.choices, default=Keep.NOTHING)
    sessions = models.TextField(
        blank=True,
        help_text="One stateful session a line, as partner/project (exactly as the jobs "
        "submit them).",
    )
    max_gb = models.FloatField(
        "at most (GB)",
        null=True,
        blank=True,
        help_text="This tenant's archive limit; empty for AQUADASH_ARCHIVE_MAX_GB. At the "
        "limit new archiving stops; nothing kept is deleted before its date.",
    )

    class Meta:
        verbose_name = "archive of result files"
        verbose_name_plural = "archives of result files"

    def __str__(self) -> str:
        return f"Archive of {self.tenant}"

    def session_pairs(self) -> set[tuple[str, str]]:
        pairs = (line.strip().partition("/") for line in self.sessions.splitlines())
        return {(partner, project) for partner, _, project in pairs if partner and project}


class KeptJob(models.Model):
    """A job whose result files aquadash keeps (or tried to keep) in its own storage."""

    class Reason(models.TextChoices):
        ASKED = "asked", "someone pressed Keep these files"
        WATCHED = "watched", "someone watched it"
        SESSION = "session", "its stateful session is kept"
        ALL = "all", "the tenant keeps every completed job"

    class Status(models.TextChoices):
        COPYING = "copying", "being copied"
        KEPT = "kept", "kept"
        FAILED = "failed", "could not be copied"
        PURGED = "purged", "could not be kept: Zuora purged the files first"
        FULL = "full", "not kept: the tenant's archive is full"
        EXPIRED = "expired", "expired and removed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="kept_jobs")
    job_id = models.CharField(max_length=32)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COPYING)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    kept_until = models.DateField()
    kept_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last showed it was copying the job."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "job_id"], name="one_kept_job_per_job")
        ]
        indexes = [models.Index(fields=["status", "kept_until"], name="kept_job_status")]

    def __str__(self) -> str:
        return f"Job {self.job_id}: {self.get_status_display()}"

    @property
    def bytes(self) -> int:
        return sum(
            each.size or 0 for each in self.files.all() if each.status == KeptFile.Status.KEPT
        )


class KeptFile(models.Model):
    """One result file (a batch's file or a segment) in the archive, under a random key."""

    class Status(models.TextChoices):
        WAITING = "waiting", "waiting"
        COPYING = "copying", "being copied"
        KEPT = "kept", "kept"
        FAILED = "failed", "could not be copied"
        PURGED = "purged", "purged at Zuora before it was copied"

    kept_job = models.ForeignKey(KeptJob, on_delete=models.CASCADE, related_name="files")
    file_id = models.CharField(max_length=32)
    batch_id = models.CharField(max_length=32)
    key = models.CharField(max_length=200, blank=True, help_text="Its name in the storage.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    records = models.BigIntegerField(
        null=True, blank=True, help_text="CSV records, as a CSV reader counts them."
    )
    detail = models.CharField(max_length=500, blank=True)
    kept_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kept_job", "file_id"], name="one_kept_file")
        ]
        indexes = [models.Index(fields=["file_id"], name="kept_file_id")]

    def __str__(self) -> str:
        return f"File {self.file_id}: {self.get_status_display()}"


from aquadash.identity import Identity  # noqa: E402, F401  # its own module; a model here
