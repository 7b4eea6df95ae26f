from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # Browsers ask for it; a 404 would be a console error on the pages the browser tests check.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
]
