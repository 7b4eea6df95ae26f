"""A tenant's admins: staff users whose group was granted the tenant as admin change that tenant's
settings in the admin, and nothing else; grants are an inline with their role."""

from collections.abc import Callable

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from aquadash.models import Grant, Role, Tenant
from tests.conftest import CANARY_SECRET
from tests.test_tenant_admin import NEW_SECRET, change_url, form_data, grants_data, stored_secret


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def globex(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("globex", groups=[Group.objects.create(name="Globex staff")])


def granted(
    tenant: Tenant, role: Role, make_user: Callable[..., User], *, staff: bool = True
) -> User:
    """A user (staff unless said) whose only group was granted `tenant` in `role`."""
    group = Group.objects.create(name=f"{tenant.name} {role}s")
    Grant.objects.create(tenant=tenant, group=group, role=role)
    user = make_user(f"{tenant.slug}-{role}", groups=[group])
    user.is_staff = staff
    user.save()
    return user


@pytest.fixture
def tenant_admin(tenant: Tenant, make_user: Callable[..., User]) -> Client:
    """Staff, no Django permission, in a group granted Acme as admin."""
    return signed_in(granted(tenant, Role.ADMIN, make_user))


def test_a_tenant_admin_lists_only_the_tenants_they_administer(tenant_admin, tenant, globex):
    response = tenant_admin.get(reverse("admin:aquadash_tenant_changelist"))

    assert response.status_code == 200
    assert [each.slug for each in response.context["cl"].result_list] == ["acme"]


def test_a_tenant_admin_changes_their_tenants_settings_and_secret(tenant_admin, tenant):
    response = tenant_admin.post(
        change_url(tenant), form_data(tenant, name="Acme Corp", secret=NEW_SECRET)
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Acme Corp"
    assert stored_secret(tenant) == NEW_SECRET


def test_a_tenant_admin_never_sees_the_stored_secret(tenant_admin, tenant):
    html = tenant_admin.get(change_url(tenant)).content.decode()

    assert 'name="secret"' in html and CANARY_SECRET not in html
    assert tenant.encrypted_secret not in html


def test_a_tenant_admin_cannot_open_another_tenant(tenant_admin, globex):
    response = tenant_admin.get(change_url(globex))

    assert response.status_code == 302  # the admin's "doesn't exist", back to its index
    assert "Globex" not in tenant_admin.get(response["Location"]).content.decode()
    assert tenant_admin.post(change_url(globex), form_data(globex, name="Mine")).status_code == 302
    globex.refresh_from_db()
    assert globex.name == "Globex"


def test_a_tenant_admins_permissions_name_their_tenant_only(tenant, globex, make_user, rf):
    request = rf.get("/admin/")
    request.user = granted(tenant, Role.ADMIN, make_user)
    tenants = admin.site.get_model_admin(Tenant)

    assert tenants.has_change_permission(request, tenant)
    assert tenants.has_view_permission(request, tenant)
    assert not tenants.has_change_permission(request, globex)
    assert not tenants.has_view_permission(request, globex)


@pytest.mark.parametrize("staff", [True, False])
def test_a_tenant_admin_meeting_rejected_credentials_gets_the_link_to_fix_them(
    simulator_tenant, make_user, staff
):
    simulator_tenant.set_secret("not-the-secret")
    simulator_tenant.save()
    client = signed_in(granted(simulator_tenant, Role.ADMIN, make_user, staff=staff))

    response = client.get(f"/t/sim/jobs/{'0' * 32}/")

    assert response.status_code == 502
    link = reverse("admin:aquadash_tenant_change", args=[simulator_tenant.pk])
    assert (link in response.content.decode()) == staff  # the admin site is for staff only


def test_a_tenant_admin_cannot_add_or_delete_tenants(tenant_admin, tenant):
    assert tenant_admin.get(reverse("admin:aquadash_tenant_add")).status_code == 403
    delete = reverse("admin:aquadash_tenant_delete", args=[tenant.pk])
    assert tenant_admin.post(delete, {"post": "yes"}).status_code == 403
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_a_tenant_admin_cannot_grant_nor_deactivate_nor_readdress(tenant_admin, tenant):
    mine = Group.objects.create(name="Mine")
    data = form_data(tenant, slug="elsewhere", **grants_data(tenant, (mine, Role.ADMIN)))
    del data["is_active"]  # unticked

    assert tenant_admin.post(change_url(tenant), data).status_code == 302

    tenant.refresh_from_db()
    assert (tenant.slug, tenant.is_active) == ("acme", True)
    assert not Grant.objects.filter(group=mine).exists()


@pytest.mark.parametrize("change", [{"grants-0-role": Role.VIEWER}, {"grants-0-DELETE": "on"}])
def test_a_tenant_admin_cannot_change_nor_remove_a_grant(tenant_admin, tenant, change):
    before = list(tenant.grants.values_list("group__name", "role"))

    assert tenant_admin.post(change_url(tenant), form_data(tenant, **change)).status_code == 302

    assert list(tenant.grants.values_list("group__name", "role")) == before


def test_a_tenant_admin_may_test_their_tenants_connection_only(tenant_admin, tenant, globex):
    nowhere = {"environment": "custom", "base_url": "http://127.0.0.1:1"}  # fails at once
    Tenant.objects.filter(pk__in=[tenant.pk, globex.pk]).update(**nowhere)
    own = reverse("admin:aquadash_tenant_test_connection", args=[tenant.pk])
    other = reverse("admin:aquadash_tenant_test_connection", args=[globex.pk])

    assert tenant_admin.post(own).status_code == 302
    assert tenant_admin.post(other).status_code == 404

    tested = Tenant.objects.exclude(last_contact_at=None)
    assert [each.slug for each in tested] == ["acme"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DOWNLOADER])
def test_staff_below_the_admin_role_get_no_tenant_in_the_admin(
    tenant, make_user, role
):  # fmt: skip
    client = signed_in(granted(tenant, role, make_user))

    assert client.get(change_url(tenant)).status_code == 403
    assert client.get(reverse("admin:aquadash_tenant_changelist")).status_code == 403


def test_the_admin_role_without_staff_status_opens_no_admin(tenant, make_user):
    client = signed_in(granted(tenant, Role.ADMIN, make_user, staff=False))

    assert client.get(change_url(tenant)).status_code == 302  # to the admin's sign-in


def test_a_superuser_grants_a_group_a_tenant_in_a_role(admin_client, tenant):
    viewers = Group.objects.create(name="Acme viewers")

    response = admin_client.post(
        change_url(tenant), form_data(tenant, **grants_data(tenant, (viewers, Role.VIEWER)))
    )

    assert response.status_code == 302
    assert Grant.objects.get(tenant=tenant, group=viewers).role == Role.VIEWER


def test_the_change_form_shows_each_grant_with_its_role(admin_client, tenant):
    html = admin_client.get(change_url(tenant)).content.decode()

    assert "Acme staff" in html
    assert '<option value="downloader" selected>' in html
