"""The archive's pages in the admin: each tenant's policy with what it keeps (jobs, bytes, the
oldest date, a warning at the limit), and every kept job with its files."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from aquadash import archive
from aquadash.models import ArchivePolicy, KeptFile, KeptJob


@admin.register(ArchivePolicy)
class ArchivePolicyAdmin(admin.ModelAdmin):
    list_display = ["tenant", "keep", "kept_jobs", "kept_bytes", "oldest", "limit", "warning"]
    fields = ["tenant", "keep", "sessions", "max_gb"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        for policy in ArchivePolicy.objects.select_related("tenant"):
            if full := archive.over_limit(policy.tenant):
                self.message_user(request, f"{policy.tenant}: {full}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="kept jobs")
    def kept_jobs(self, policy: ArchivePolicy) -> int:
        return archive.tenant_figures(policy.tenant)["jobs"]

    @admin.display(description="bytes kept")
    def kept_bytes(self, policy: ArchivePolicy) -> str:
        return filesizeformat(archive.kept_bytes(policy.tenant))

    @admin.display(description="oldest kept")
    def oldest(self, policy: ArchivePolicy) -> str:
        oldest = archive.tenant_figures(policy.tenant)["oldest"]
        return timezone.localtime(oldest).strftime("%Y-%m-%d") if oldest else "—"

    @admin.display(description="limit")
    def limit(self, policy: ArchivePolicy) -> str:
        return filesizeformat(archive.limit_bytes(policy.tenant))

    @admin.display(description="warning")
    def warning(self, policy: ArchivePolicy) -> str:
        return "FULL: new archiving stopped" if archive.over_limit(policy.tenant) else ""


class KeptFileInline(admin.TabularInline):
    model = KeptFile
    fields = ["file_id", "batch_id", "status", "size", "sha256", "records", "detail", "kept_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(KeptJob)
class KeptJobAdmin(admin.ModelAdmin):
    """What happened to each job aquadash keeps: read-only, as the trails are."""

    list_display = ["job_id", "tenant", "reason", "status", "kept_until", "kept_at", "detail"]
    list_filter = ["tenant", "status", "reason"]
    search_fields = ["job_id"]
    inlines = [KeptFileInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # nothing kept is deleted before its date: expiry removes it
