from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from aquadash import views

tenant_urls = [
    path("jobs/", views.tenant_jobs, name="tenant_jobs"),
    path("jobs/<str:job_id>/", views.job_page, name="job"),
    path("jobs/<str:job_id>/raw.json", views.job_raw, name="job_raw"),
    path(
        "jobs/<str:job_id>/batches/<str:batch_id>/segments/",
        views.batch_segments,
        name="batch_segments",
    ),
    path("last-completed/", views.last_completed, name="last_completed"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:tenant_slug>/", include(tenant_urls)),
    path("health/", views.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
