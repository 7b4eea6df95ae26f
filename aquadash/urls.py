from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from aquadash import identity, views, work_queue


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

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("jobs/", work_queue.all_jobs, name="work_queue"),
    path("find/<zuora_id:job_id>/", views.find_job, name="find_job"),
    path("t/<slug:tenant_slug>/", include(tenant_urls)),
    path("health/", views.health, name="health"),
    path("accounts/login/", identity.LoginPage.as_view(), name="login"),
    path("oidc/", include(identity.urlpatterns)),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
