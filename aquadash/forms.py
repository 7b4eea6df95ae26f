"""The lookup forms on the home page."""

import re

from django import forms

from aquadash import zuora
from aquadash.models import Tenant

# A pasted aquadash job link: https://host/t/<slug>/jobs/<job-id>/...
JOB_LINK = re.compile(r"/t/(?P<slug>[-a-zA-Z0-9_]+)/jobs/(?P<job_id>[0-9a-fA-F]{32})(?:/|$|\?|#)")
# A pasted Zuora API address or curl line: .../batch-query/jobs/<job-id>
ZUORA_JOB_URL = re.compile(r"/batch-query/jobs/(?P<job_id>[0-9a-fA-F]{32})(?:/|$|\?|#|\"|')")


class TenantChoiceForm(forms.Form):
    tenant = forms.ChoiceField()

    def __init__(self, *args: object, tenants: list[Tenant], **kwargs: object) -> None:
        # A list the view read once: the home page's forms and template share one query.
        super().__init__(*args, **kwargs)
        self.tenants = {tenant.slug: tenant for tenant in tenants}
        self.fields["tenant"].choices = [(tenant.slug, tenant.name) for tenant in tenants]

    def clean_tenant(self) -> Tenant:
        return self.tenants[self.cleaned_data["tenant"]]


ANY_TENANT = "*"


class LookupForm(TenantChoiceForm):
    job = forms.CharField(
        label="Job ID",
        max_length=2000,
        widget=forms.TextInput(
            attrs={
                "placeholder": "32-character job ID, or a job link",
                "autocomplete": "off",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The header's field, on every page, names no tenant: any tenant the person may see.
        self.fields["tenant"].required = False
        if len(self.tenants) > 1:  # and then the default: people paste IDs without a tenant
            field = self.fields["tenant"]
            field.choices = [(ANY_TENANT, "Any tenant I can see"), *field.choices]
            self.initial = {**self.initial, "tenant": ANY_TENANT}  # a copy: the view shares it

    def clean_tenant(self) -> Tenant | None:
        if self.cleaned_data["tenant"] in (ANY_TENANT, ""):
            return None
        return super().clean_tenant()

    def clean(self) -> dict:
        cleaned = super().clean()
        text = cleaned.get("job", "")
        if link := JOB_LINK.search(text):
            # The link names its own tenant; the job page checks access to it.
            cleaned["tenant_slug"] = link["slug"]
            cleaned["job_id"] = link["job_id"].lower()
            self.errors.pop("tenant", None)
            return cleaned
        zuora_url = ZUORA_JOB_URL.search(text)
        job_id = zuora_url["job_id"].lower() if zuora_url else zuora.normalize_id(text)
        try:
            cleaned["job_id"] = zuora.check_id(job_id, what="job")
        except zuora.InvalidId as exc:
            self.add_error("job", str(exc))
        if tenant := cleaned.get("tenant"):
            cleaned["tenant_slug"] = tenant.slug
        return cleaned  # no tenant_slug: any tenant


class LastCompletedForm(TenantChoiceForm):
    partner = forms.CharField(max_length=128, strip=True)
    project = forms.CharField(max_length=128, strip=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Shares the home page with LookupForm: its own element IDs, the same field names.
        super().__init__(*args, auto_id="last_completed_%s", **kwargs)
