"""Watching a job: the watch card, who may watch, and who sees the watchers."""

from django.test import Client

from aquadash.models import Watch
from tests.watching.conftest import (
    COMPLETED,
    HTMX,
    RUNNING,
    open_job,
    watch,
)

# --- The watch card ------------------------------------------------------------------------------


def test_watching_and_unwatching_a_running_job(client, simulator_tenant, finance):
    open_job(client, simulator_tenant, RUNNING)
    card = client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()
    assert "Notify me when it ends" in card
    assert "Nobody is watching this job." in card

    card = watch(client, simulator_tenant, RUNNING)

    assert "Stop watching" in card
    assert "<strong>finance</strong>" in card
    assert Watch.objects.open().filter(user=finance, job_id=RUNNING).count() == 1

    card = watch(client, simulator_tenant, RUNNING, "unwatch")

    assert "Notify me when it ends" in card
    assert "Nobody is watching this job." in card
    assert Watch.objects.get(user=finance).end == Watch.End.UNWATCHED


def test_watching_twice_is_one_watch(client, simulator_tenant, finance):
    open_job(client, simulator_tenant, RUNNING)

    watch(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)

    assert Watch.objects.filter(user=finance).count() == 1


def test_every_colleague_sees_who_is_watching(client, simulator_tenant, controller):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    colleague = Client()
    colleague.force_login(controller)

    card = colleague.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()

    assert "<strong>finance</strong>" in card
    assert "Notify me when it ends" in card  # the colleague is not watching yet


def test_a_final_job_offers_no_watch(client, simulator_tenant):
    open_job(client, simulator_tenant, COMPLETED)

    watch(client, simulator_tenant, COMPLETED)

    assert not Watch.objects.exists()
    card = client.get(f"/t/sim/jobs/{COMPLETED}/watch/", **HTMX).content.decode()
    assert "Notify me" not in card


def test_without_javascript_watching_returns_to_the_job_page(client, simulator_tenant):
    open_job(client, simulator_tenant, RUNNING)

    response = client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})

    assert response.status_code == 302
    assert response.url == f"/t/sim/jobs/{RUNNING}/"
    assert Watch.objects.open().count() == 1


def test_the_job_page_loads_the_watch_card(client, simulator_tenant):
    page = client.get(f"/t/sim/jobs/{RUNNING}/").content.decode()

    assert f'hx-get="/t/sim/jobs/{RUNNING}/watch/"' in page
    assert 'hx-trigger="load, aquadash:ended from:body"' in page


def test_someone_who_may_not_see_the_tenant_can_neither_watch_nor_see_watchers(
    client, simulator_tenant, outsider_client
):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)

    assert outsider_client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).status_code == 404
    response = outsider_client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})
    assert response.status_code == 404
    assert Watch.objects.count() == 1


def test_a_job_never_opened_cannot_be_watched(client, simulator_tenant):
    response = client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})

    assert response.status_code == 404
    assert not Watch.objects.exists()
