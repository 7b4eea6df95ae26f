"""The admin site: tenants, their write-only secrets, and who may see them."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from aquadash import allowance, api, exports
from aquadash.identity import Identity
from aquadash.models import (
    ApiToken,
    AuditEvent,
    Delivery,
    Download,
    Grant,
    JobSnapshot,
    Lookup,
    Role,
    Tenant,
    Watch,
)
from aquadash.notifications import check_webhook_url

admin.site.site_header = "aquadash administration"
admin.site.site_title = "aquadash admin"
admin.site.index_title = "Tenants, access and the lookup trail"


SECRET_BOUND_FIELDS = {"environment", "base_url", "auth_method"}
CREDENTIAL_FIELDS = SECRET_BOUND_FIELDS | {
    "identity",
    "entity_id",
    "org_ids",
    "secret",
    "clear_secret",
    "webhook_url",
    "clear_webhook_url",
}


BASIC_AUTH_WARNING = (
    "This tenant signs in with a username and password. Zuora API users' passwords can "
    "expire, and aquadash then stops working for the tenant until someone enters the new one: "
    "Zuora recommends an OAuth client instead."
)


class TenantForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered, not even masked, and blank keeps it.
    secret = forms.CharField(
        label="Client secret or password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    clear_secret = forms.BooleanField(
        label="Clear the stored secret",
        required=False,
        help_text="aquadash then cannot sign in to Zuora for this tenant until a secret is "
        "entered again.",
    )

    # Write-only too: whoever holds a webhook's URL can post to its channel.
    webhook_url = forms.CharField(
        label="Chat webhook URL",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="A Slack-compatible incoming webhook: watchers' notifications are also posted "
        "there. Its host must be in AQUADASH_WEBHOOK_HOSTS.",
    )
    clear_webhook_url = forms.BooleanField(label="Remove the chat webhook", required=False)

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "is_active",
            "environment",
            "base_url",
            "time_zone",
            "entity_id",
            "org_ids",
            "auth_method",
            "identity",
            "secret",
            "clear_secret",
            "webhook_url",
            "clear_webhook_url",
        ]

    @staticmethod
    def nothing_to_clear(tenant: Tenant | None) -> set[str]:
        """The "clear" boxes of what this tenant has not stored: neither shown nor taken."""
        stored = {"clear_secret": "encrypted_secret", "clear_webhook_url": "encrypted_webhook_url"}
        return {box for box, field in stored.items() if not getattr(tenant, field, "")}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for box in self.nothing_to_clear(self.instance):
            del self.fields[box]
        if self.instance.encrypted_secret:
            self.fields["secret"].help_text = (
                "A secret is stored (encrypted; it is never shown). Leave blank to keep it, or "
                "enter a new one to replace it."
            )
        else:
            self.fields["secret"].help_text = "Stored encrypted; it is never shown again."
        if self.instance.encrypted_webhook_url:
            self.fields[
                "webhook_url"
            ].help_text += " One is stored (encrypted; never shown): leave blank to keep it."

    @sensitive_variables()
    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        return check_webhook_url(url) if url else ""

    @sensitive_variables()
    def clean(self) -> dict:
        data = super().clean()
        secret, clear = data.get("secret"), data.get("clear_secret")
        if secret and clear:
            self.add_error("clear_secret", "Either clear the secret or enter a new one.")
        elif not secret and not clear:
            if not self.instance.encrypted_secret:
                self.add_error("secret", "Enter the client secret or password.")
            elif self.instance.pk and set(self.changed_data) & SECRET_BOUND_FIELDS:
                # The stored secret was given for one host and sign-in method: it follows no
                # change of either unless someone who knows it types it again.
                self.add_error(
                    "secret",
                    "You changed where or how aquadash signs in to Zuora: enter the secret again, "
                    "so that it only goes where you meant it to.",
                )
        return data

    @sensitive_variables()
    def save(self, commit: bool = True) -> Tenant:
        if secret := self.cleaned_data.get("secret"):
            self.instance.set_secret(secret)
        elif self.cleaned_data.get("clear_secret"):
            self.instance.encrypted_secret = ""
        if webhook_url := self.cleaned_data.get("webhook_url"):
            self.instance.set_webhook_url(webhook_url)
        elif self.cleaned_data.get("clear_webhook_url"):
            self.instance.set_webhook_url("")
        return super().save(commit)


class GrantInline(admin.StackedInline):
    """Who may see the tenant, and what they may do there. Only those who may change every
    tenant change grants: a tenant's admins see them, so that they cannot grant themselves more
    tenants' people nor read every group's name. Stacked, not tabular: each field keeps its
    label, for screen readers, and a phone shows it without scrolling sideways."""

    model = Grant
    fields = ["group", "role"]
    extra = 1
    verbose_name = "group granted this tenant"
    verbose_name_plural = "Access: groups granted this tenant (superusers see every tenant)"

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return True  # shown with the tenant, to whoever may see it here

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("aquadash.change_tenant")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("aquadash.change_tenant")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("aquadash.change_tenant")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Tenants, for those with Django's permissions on every tenant; and each tenant for the
    staff users whose group was granted it as admin, who may view and change that one (its
    name, Zuora settings, credentials and webhook), but not add, delete, deactivate, rename its
    address, change its grants, nor see any other tenant."""

    form = TenantForm
    inlines = [GrantInline]
    change_form_template = "admin/tenant_change_form.html"
    list_display = (
        "name",
        "environment",
        "auth_method",
        "is_active",
        "last_contact",
        "api_allowance",
    )
    list_filter = ("environment", "auth_method", "is_active")
    search_fields = ("name", "slug", "identity")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "last_contact_at",
        "last_contact_ok",
        "last_contact_message",
        "created_at",
        "updated_at",
    )
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_active"]}),
        ("Zuora", {"fields": ["environment", "base_url", "time_zone", "entity_id", "org_ids"]}),
        ("Credentials", {"fields": ["auth_method", "identity", "secret", "clear_secret"]}),
        ("Notifications", {"fields": ["webhook_url", "clear_webhook_url"]}),
        ("Last contact with Zuora", {"fields": list(readonly_fields)}),
    ]
    actions = ["test_connection"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or self._administers(request)

    def has_view_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return super().has_view_permission(request, obj) or self._administers(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return super().has_change_permission(request, obj) or self._administers(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        tenants = super().get_queryset(request)
        if super().has_view_permission(request):
            return tenants
        return tenants.filter(pk__in=self._administered(request).values("pk"))

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not super().has_change_permission(request, obj):
            fields += ["slug", "is_active"]
        return fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Tenant | None = None) -> dict:
        return self.prepopulated_fields if super().has_change_permission(request, obj) else {}

    def _administered(self, request: HttpRequest) -> QuerySet[Tenant]:
        """The tenants this user's groups were granted as admin (the admin site lets only staff
        users in)."""
        return Tenant.objects.visible_to(request.user, role=Role.ADMIN)

    def _administers(self, request: HttpRequest, tenant: Tenant | None = None) -> bool:
        tenants = self._administered(request)
        return (tenants.filter(pk=tenant.pk) if tenant else tenants).exists()

    def get_fieldsets(self, request: HttpRequest, obj: Tenant | None = None) -> list:
        hidden = TenantForm.nothing_to_clear(obj)
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in self.fieldsets
        ]

    @admin.display(description="last contact", ordering="last_contact_at")
    def last_contact(self, tenant: Tenant) -> str:
        if tenant.last_contact_at is None:
            return "never"
        when = date_format(timezone.localtime(tenant.last_contact_at), "SHORT_DATETIME_FORMAT")
        return f"{'OK' if tenant.last_contact_ok else 'failed'}, {when}"

    @admin.display(description="API allowance")
    def api_allowance(self, tenant: Tenant) -> str:
        left = allowance.latest(tenant.pk)
        return str(left) if left else "not known"

    @method_decorator(sensitive_post_parameters("secret", "webhook_url"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(description="Test the connection to Zuora", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: object) -> None:
        for tenant in queryset:
            self._report_check(request, tenant)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="aquadash_tenant_test_connection",
            ),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            raise Http404
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        self._report_check(request, tenant)
        return HttpResponseRedirect(reverse("admin:aquadash_tenant_change", args=[tenant.pk]))

    def save_model(
        self, request: HttpRequest, tenant: Tenant, form: TenantForm, change: bool
    ) -> None:
        super().save_model(request, tenant, form, change)
        if tenant.auth_method == "basic":
            self.message_user(request, BASIC_AUTH_WARNING, messages.WARNING)
        fields = [name for name in form.changed_data if name in CREDENTIAL_FIELDS]
        if fields or not change:
            detail = ", ".join(
                what
                for field, what in [
                    ("clear_secret", "secret cleared"),
                    ("secret", "secret replaced"),
                    ("clear_webhook_url", "webhook removed"),
                    ("webhook_url", "webhook replaced"),
                ]
                if field in fields
            )
            AuditEvent.record(
                AuditEvent.Kind.CREDENTIALS_CHANGED,
                user=request.user,
                tenant=tenant,
                target=", ".join(fields) if change else "tenant added",
                detail=detail,  # names of fields only: never a value
            )

    def _report_check(self, request: HttpRequest, tenant: Tenant) -> None:
        ok, message = tenant.check_connection(by=request.user)
        level = messages.SUCCESS if ok else messages.ERROR
        self.message_user(request, f"{tenant.name}: {message}", level)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: admins may read them, nobody may edit or delete them here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CsvExportAdmin(ReadOnlyAdmin):
    """A trail that can be downloaded as CSV, as the list stands: its filters, search and
    dates. `csv_columns` are the fields exported, in order."""

    change_list_template = "admin/csv_change_list.html"
    csv_columns: list[str] = []

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_export"
        view = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", view, name=name), *super().get_urls()]

    def export_csv(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)  # the list's filters and search
        rows = changelist.get_queryset(request).values_list(*self.csv_columns)
        # Choices in words ("CSV for Excel", not "excel"), as the list and the pages say them.
        labels = [
            dict(get_fields_from_path(self.model, column)[-1].flatchoices)
            for column in self.csv_columns
        ]
        readable = (
            [words.get(value, value) for words, value in zip(labels, row, strict=True)]
            for row in rows.iterator(chunk_size=2000)
        )
        name = f"{self.opts.verbose_name_plural.replace(' ', '-')}.csv"
        return exports.csv_response(name, self.csv_columns, readable)


@admin.register(Lookup)
class LookupAdmin(CsvExportAdmin):
    list_display = ["at", "username", "tenant", "job_id", "job_name", "job_status", "outcome"]
    csv_columns = ["at", "username", "tenant__slug", "job_id", "job_name", "job_status",
                   "outcome"]  # fmt: skip
    list_filter = ["tenant", "outcome", "at"]
    search_fields = ["job_id", "username", "job_name"]
    date_hierarchy = "at"


@admin.register(JobSnapshot)
class JobSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["job_id", "name", "tenant", "status", "last_fetched_at", "gone_at"]
    list_filter = ["tenant", "status"]
    search_fields = ["job_id", "name"]
    date_hierarchy = "last_fetched_at"


@admin.register(Download)
class DownloadAdmin(CsvExportAdmin):
    # What was fetched (kind, variant, file ID) in one column, bytes and records in another, and
    # no batch ID (it is on each download's page and in the CSV): the list fits a 1440 px window
    # beside the navigation and the filters.
    list_display = ["started_at", "username", "tenant", "job_id", "what", "size", "outcome"]
    csv_columns = ["started_at", "finished_at", "username", "tenant__slug", "job_id",
                   "batch_id", "file_id", "kind", "variant", "portion", "from_archive",
                   "bytes_sent", "records_counted", "outcome", "detail"]  # fmt: skip
    fields = ["started_at", "finished_at", "user", "username", "tenant", "job_id", "batch_id",
              "file_id", "kind", "variant", "portion", "from_archive", "sent", "records",
              "outcome", "detail"]  # fmt: skip
    readonly_fields = ["sent", "records"]
    list_filter = ["tenant", "kind", "outcome", "started_at"]
    search_fields = ["job_id", "file_id", "batch_id", "username"]
    date_hierarchy = "started_at"

    @admin.display(description="what", ordering="kind")
    def what(self, download: Download) -> str:
        if not download.file_id:
            return download.what
        return format_html('{}<br><span class="id">{}</span>', download.what, download.file_id)

    @admin.display(description="sent", ordering="bytes_sent")
    def size(self, download: Download) -> str:
        if download.records_counted is None:
            return filesizeformat(download.bytes_sent)
        return format_html(
            "{}<br>{} records", filesizeformat(download.bytes_sent), self.records(download)
        )

    @admin.display(description="sent")
    def sent(self, download: Download) -> str:
        return f"{filesizeformat(download.bytes_sent)} ({download.bytes_sent:,} bytes)"

    @admin.display(description="records", ordering="records_counted")
    def records(self, download: Download) -> str:
        return "—" if download.records_counted is None else f"{download.records_counted:,}"


@admin.register(AuditEvent)
class AuditEventAdmin(CsvExportAdmin):
    """Read-only for everyone, superusers included: the trail is only ever appended to."""

    list_display = ["at", "kind", "username", "tenant_name", "target", "detail"]
    csv_columns = list_display
    list_filter = ["kind", "tenant", "at"]
    search_fields = ["username", "tenant_name", "target"]
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """People's API tokens, by their first characters (the rest is not stored): an admin told
    of a leaked `aqd_…` finds it here and revokes it."""

    list_display = ["prefix", "name", "user", "created_at", "expires_at", "last_used_at",
                    "revoked_at"]  # fmt: skip
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["prefix", "name", "user__username"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at=None):
            api.revoke(token, by=request.user)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("aquadash.change_apitoken")


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["channel", "recipient", "status", "attempts", "last_error", "claimed_at", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Watch)
class WatchAdmin(ReadOnlyAdmin):
    # The job's ID and name in one column, how and when the watch ended in another,
    # and delivery errors on each watch's page: the list fits a 1440 px window.
    list_display = ["created_at", "user", "tenant", "job", "ended", "notified"]
    list_filter = ["tenant", "end", "created_at"]
    search_fields = ["job_id", "job_name", "user__username"]
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]

    def get_queryset(self, request: HttpRequest) -> object:
        watches = super().get_queryset(request).select_related("user", "tenant")
        return watches.prefetch_related("deliveries")

    @admin.display(description="job", ordering="job_id")
    def job(self, watch: Watch) -> str:
        return format_html('<span class="id">{}</span><br>{}', watch.job_id, watch.job_name)

    @admin.display(description="ended", ordering="ended_at")
    def ended(self, watch: Watch) -> str:
        if watch.ended_at is None:
            return "still watching"
        when = date_format(timezone.localtime(watch.ended_at), "SHORT_DATETIME_FORMAT")
        return f"{watch.get_end_display()}, {when}"

    @admin.display(description="notified")
    def notified(self, watch: Watch) -> str:
        return "; ".join(
            f"{d.get_channel_display()}: {d.get_status_display()}" for d in watch.deliveries.all()
        )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    # The watch as its job, the attempts beside the status, the time sent on each delivery's
    # page: the list fits a 1440 px window beside the navigation and the filters.
    list_display = ["created_at", "job", "channel", "recipient", "status_and_attempts",
                    "last_error"]  # fmt: skip
    list_filter = ["channel", "status", "watch__tenant"]
    search_fields = ["recipient", "watch__job_id", "watch__user__username"]
    list_select_related = ["watch"]

    @admin.display(description="job", ordering="watch__job_id")
    def job(self, delivery: Delivery) -> str:
        return delivery.watch.job_id

    @admin.display(description="status", ordering="status")
    def status_and_attempts(self, delivery: Delivery) -> str:
        tries = delivery.attempts
        return f"{delivery.get_status_display()} ({tries} attempt{'' if tries == 1 else 's'})"


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    """Who signs in through single sign-on as whom. Made only by signing in; deleting one makes
    that person's next sign-in create a new user."""

    list_display = ["user", "issuer", "subject", "created"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["issuer", "subject", "user", "created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


from aquadash import archive_admin  # noqa: E402, F401  the archive's own pages
