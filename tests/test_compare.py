"""A stateful job beside the previous completed run of its session."""

import re

import pytest
from django.test import Client

from aquadash import jobs, zuora
from aquadash import simulator as sim
from aquadash.templatetags.aquadash import signed_percent

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client(finance_client: Client) -> Client:
    return finance_client


def stored(tenant, n: int, started: str, batches: dict, *, partner="acme", project="p1") -> str:
    """Store a completed run of the session: `batches` maps names to (records, full)."""
    job_id = f"{n:032x}"
    raw = {
        "id": job_id,
        "name": f"Nightly {n}",
        "status": "completed",
        "partner": partner,
        "project": project,
        "startTime": started,
        "batches": [
            {"batchId": f"{n:016x}{i:016x}", "name": name, "query": f"select Id from {name}",
             "status": "completed", "recordCount": records, "full": full}
            for i, (name, (records, full)) in enumerate(batches.items())
        ],
    }  # fmt: skip
    jobs.store_job(tenant, zuora.parse_job(raw), user=None)
    return job_id


def in_demo_session(tenant, *, started: str) -> str:
    """A run of the simulator's stateful demo session, whose last completed job Zuora knows."""
    return stored(
        tenant, 9, started, {"Account": (1, False)},
        partner=sim.DEMO_PARTNER, project=sim.DEMO_PROJECT,
    )  # fmt: skip


def card(client: Client, tenant, job_id: str) -> str:
    response = client.get(f"/t/{tenant.slug}/jobs/{job_id}/compare/", **HTMX)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def cells(page: str, batch: str) -> list[str]:
    row = re.search(rf"<tr[^>]*>\s*<td>{batch}\b.*?</tr>", page)
    assert row, f"no row for {batch}"
    return [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row[0])
    ]


def test_each_batch_is_matched_by_name_with_its_change(client, simulator_tenant):
    stored(simulator_tenant, 1, "2026-10-01 02:00:00", {"Accounts": (100, True)})  # older still
    before = {"Accounts": (1000, True), "Invoices": (200, False), "Payments": (50, False)}
    stored(simulator_tenant, 2, "2026-11-01 02:00:00", before)
    now = {"Accounts": (1800, False), "Invoices": (190, False), "Usage": (7, False)}
    job_id = stored(simulator_tenant, 3, "2026-11-02 02:00:00", now)

    page = card(client, simulator_tenant, job_id)

    assert "Nightly 2" in page  # the latest earlier run, not the oldest
    assert cells(page, "Accounts")[1:5] == ["1,000", "1,800", "+80 %", "full → incremental"]
    assert cells(page, "Invoices")[1:4] == ["200", "190", "\u22125 %"]
    assert "new in this run" in cells(page, "Usage")[0]
    assert "missing from this run" in cells(page, "Payments")[0]
    flagged = re.findall(r'<tr class="flagged">\s*<td>(\w+)', page)
    assert flagged == ["Accounts", "Usage", "Payments"]  # Invoices moved by 5 %: not flagged


def test_the_threshold_is_a_setting(client, simulator_tenant, settings):
    settings.AQUADASH_COMPARE_THRESHOLD = 100
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (1000, True)})
    job_id = stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (1800, True)})

    page = card(client, simulator_tenant, job_id)

    assert 'class="flagged"' not in page
    assert "beyond ±100 %" in page


def test_a_session_differing_only_by_case_or_spaces_is_warned_about(client, simulator_tenant):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (10, True)}, partner="Acme")
    job_id = stored(
        simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (10, True)}, partner="acme "
    )

    page = card(client, simulator_tenant, job_id)

    assert 'class="banner banner-warn" role="alert"' in page
    assert "partner <code>Acme</code>, project <code>p1</code>, which differs" in page
    assert "Zuora does not document whether it treats the two as one session" in page
    assert "Every batch of this run is a full load: if it was meant to continue" in page
    assert "No earlier completed run of this session is known" in page


def test_a_look_alike_session_with_incremental_batches_is_not_called_a_full_load(
    client, simulator_tenant
):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (10, True)}, project="P1")
    job_id = stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (10, False)})

    page = card(client, simulator_tenant, job_id)

    assert "project <code>P1</code>, which differs" in page
    assert "This run has incremental batches, so Zuora continued some session." in page
    assert "is a full load" not in page


def test_without_a_stored_run_zuoras_last_completed_job_is_used(
    client, simulator_tenant, simulator
):
    job_id = in_demo_session(simulator_tenant, started="2099-01-01 00:00:00")

    page = card(client, simulator_tenant, job_id)

    assert "from Zuora's last completed job of this session" in page
    path = f"/v1/batch-query/jobs/partner/{sim.DEMO_PARTNER}/project/{sim.DEMO_PROJECT}"
    assert simulator.count(method="GET", path_prefix=path) == 1
    card(client, simulator_tenant, job_id)  # stored now: Zuora is not asked again
    assert simulator.count(method="GET", path_prefix=path) == 1


def test_a_job_zuora_reports_as_the_last_but_newer_is_not_a_previous_run(
    client, simulator_tenant, simulator
):
    job_id = in_demo_session(simulator_tenant, started="2001-01-01 00:00:00")

    page = card(client, simulator_tenant, job_id)

    assert "No earlier completed run of this session is known" in page


def test_zuora_failing_says_so(client, simulator_tenant, simulator):
    simulator.add_fault("unavailable", times=None)
    job_id = in_demo_session(simulator_tenant, started="2099-01-01 00:00:00")

    page = card(client, simulator_tenant, job_id)

    assert "Zuora could not say which run came before:" in page


def test_the_job_page_loads_the_comparison_only_for_stateful_jobs(client, simulator_tenant):
    job_id = stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (1, True)})

    assert (
        f'hx-get="/t/sim/jobs/{job_id}/compare/"'
        in client.get(f"/t/sim/jobs/{job_id}/").content.decode()
    )
    page = client.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/").content.decode()
    assert "/compare/" not in page
    assert client.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/compare/").status_code == 404


@pytest.mark.parametrize(
    ("change", "shown"),
    [(80.0, "+80 %"), (-5.4, "\u22125 %"), (-99.9589, "\u221299.96 %"), (-100.0, "\u2212100 %"),
     (float("inf"), "from none")],
)  # fmt: skip
def test_a_change_is_never_rounded_to_all_or_nothing(change, shown):
    assert signed_percent(change) == shown


def test_the_previous_run_is_the_latest_earlier_moment_whatever_form_its_start_has(
    client, simulator_tenant
):
    # The tenant is in Los Angeles, UTC−8 in November: 09:45 there is 17:45 UTC. Some runs
    # were submitted with dateTimeUtc, so Zuora wrote their starts in UTC with an offset.
    stored(simulator_tenant, 1, "2026-11-02T17:00:00+0000", {"Accounts": (1, True)})
    stored(simulator_tenant, 2, "2026-11-02 09:45:00", {"Accounts": (2, True)})
    stored(simulator_tenant, 3, "2026-11-02 10:30:00", {"Accounts": (3, True)})  # later
    job_id = stored(simulator_tenant, 4, "2026-11-02T18:00:00+0000", {"Accounts": (4, True)})

    page = card(client, simulator_tenant, job_id)

    assert "Previous completed run: <a" in page
    assert ">Nightly 2</a>, started 2026-11-02 09:45 PST" in page


def test_a_version_1_0_job_has_no_session_to_compare_with(client, simulator_tenant):
    raw = {"id": "c" * 32, "status": "completed", "version": "1.0", "partner": "acme",
           "project": "p1", "batches": []}  # fmt: skip
    jobs.store_job(simulator_tenant, zuora.parse_job(raw), user=None)

    page = client.get(f"/t/sim/jobs/{'c' * 32}/").content.decode()

    assert "/compare/" not in page
    assert client.get(f"/t/sim/jobs/{'c' * 32}/compare/").status_code == 404


def test_an_incremental_run_is_compared_with_the_previous_incremental_run(client, simulator_tenant):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (100, False)})
    stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (90000, True)})  # a reload
    job_id = stored(simulator_tenant, 3, "2026-11-03 02:00:00", {"Accounts": (110, False)})

    page = card(client, simulator_tenant, job_id)

    assert ">Nightly 1</a>" in page
    assert cells(page, "Accounts")[1:4] == ["100", "110", "+10 %"]


def test_a_full_run_is_compared_with_the_previous_full_run(client, simulator_tenant):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (90000, True)})
    stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (12, False)})
    job_id = stored(simulator_tenant, 3, "2026-11-03 02:00:00", {"Accounts": (90500, True)})

    page = card(client, simulator_tenant, job_id)

    assert ">Nightly 1</a>" in page
    assert cells(page, "Accounts")[1:3] == ["90,000", "90,500"]


@pytest.mark.parametrize(
    ("before_full", "now_full", "said"),
    [(True, False, "Previous run was a full load: not comparable."),
     (False, True, "Previous run was incremental: not comparable.")],
)  # fmt: skip
def test_a_previous_run_of_the_other_kind_is_called_not_comparable(
    client, simulator_tenant, before_full, now_full, said
):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (90000, before_full)})
    job_id = stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (12, now_full)})

    page = card(client, simulator_tenant, job_id)

    assert said in page
    assert "Nightly 1</a>, started 2026-11-01 02:00 PST" in page
    assert "%" not in re.sub(r"±[\d.]+ %", "", page.split('id="compare"')[1])
    assert "<table" not in page


def test_columns_without_any_value_are_hidden(client, simulator_tenant):
    stored(simulator_tenant, 1, "2026-11-01 02:00:00", {"Accounts": (10, None)})
    job_id = stored(simulator_tenant, 2, "2026-11-02 02:00:00", {"Accounts": (11, None)})

    page = card(client, simulator_tenant, job_id)

    assert "Records before" in page
    assert "Load before" not in page  # Zuora said of no batch whether it loaded in full
    assert "Ran before" not in page  # aquadash saw no batch start and end
    assert cells(page, "Accounts") == ["Accounts", "10", "11", "+10 %"]
