from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from aquadash import api, archive, identity, metrics, views, work_queue


class ZuoraIdConverter:
    """32 hexadecimal characters, any case; anything else is a 404 before a view runs."""

    regex = "[0-9a-fA-F]{32}"

    def to_python(self, value: str) -> str:
        return value.lower()

    def to_url(self, value: str) -> str:
        return value


register_converter(ZuoraIdConverter, "zuora_id")

tenant_urls = [
    path("jobs/", work_queue.tenant_jobs, name="tenant_jobs"),
    path("jobs/<zuora_id:job_id>/", views.job_page, name="job"),
    path("jobs/<zuora_id:job_id>/downloads/", views.job_downloads, name="job_downloads"),
    path("jobs/<zuora_id:job_id>/watch/", views.job_watch, name="job_watch"),
    path("jobs/<zuora_id:job_id>/archive/", archive.job_archive, name="job_archive"),
    path("jobs/<zuora_id:job_id>/compare/", views.job_compare, name="job_compare"),
    path("jobs/<zuora_id:job_id>/raw.json", views.job_raw, name="job_raw"),
    path(
        "jobs/<zuora_id:job_id>/batches/<zuora_id:batch_id>/segments/",
        views.batch_segments,
        name="batch_segments",
    ),
    path(
        "jobs/<zuora_id:job_id>/batches/<zuora_id:batch_id>/query.txt",
        views.batch_query,
        name="batch_query",
    ),
    path(
        "jobs/<zuora_id:job_id>/batches/<zuora_id:batch_id>/segments.txt",
        views.segments_text,
        name="segments_text",
    ),
    path(
        "jobs/<zuora_id:job_id>/batches/<zuora_id:batch_id>/download",
        views.batch_download,
        name="batch_download",
    ),
    path("jobs/<zuora_id:job_id>/files/<zuora_id:file_id>", views.file_download, name="file"),
    path(
        "jobs/<zuora_id:job_id>/files/<zuora_id:file_id>/preview",
        views.file_preview,
        name="file_preview",
    ),
    path("jobs/<zuora_id:job_id>/download.zip", views.job_download, name="job_download"),
    path("last-completed/", views.last_completed, name="last_completed"),
]

api_job = "tenants/<slug:tenant_slug>/jobs/<zuora_id:job_id>"
api_urls = [
    path("tenants", api.tenants, name="api_tenants"),
    path(api_job, api.job, name="api_job"),
    path(f"{api_job}/files/<zuora_id:file_id>", api.file, name="api_file"),
    path(
        f"{api_job}/batches/<zuora_id:batch_id>/download",
        api.batch_download,
        name="api_batch_download",
    ),
    path(f"{api_job}/download.zip", api.job_download, name="api_job_download"),
    path("openapi.json", api.openapi, name="api_openapi"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("jobs/", work_queue.all_jobs, name="work_queue"),
    path("find/<zuora_id:job_id>/", views.find_job, name="find_job"),
    path("t/<slug:tenant_slug>/", include(tenant_urls)),
    path("api/v1/", include(api_urls)),
    path("api/", api.not_found),
    path("api/<path:rest>", api.not_found),
    path("account/api-tokens/", api.tokens_page, name="api_tokens"),
    path("account/api-tokens/<int:pk>/revoke", api.revoke_token, name="api_token_revoke"),
    path("health/", views.health, name="health"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/login/", identity.LoginPage.as_view(), name="login"),
    path("oidc/", include(identity.urlpatterns)),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
