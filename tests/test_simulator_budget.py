"""The simulator's request limits per tenant type, as Zuora's "Rate limits" guide documents
them: RateLimit headers on every answer, and 429 with Retry-After once a limit is used up."""

import pytest
import requests

from aquadash import simulator as sim

AUTH = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)


def get_job(simulator: sim.Simulator, job_id: str = sim.MULTI_BATCH_JOB_ID) -> requests.Response:
    return requests.get(f"{simulator.url}/v1/batch-query/jobs/{job_id}", auth=AUTH, timeout=5)


def sign_in(simulator: sim.Simulator) -> requests.Response:
    form = {
        "client_id": sim.DEMO_CLIENT_ID,
        "client_secret": sim.DEMO_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    return requests.post(f"{simulator.url}/oauth/token", data=form, timeout=5)


@pytest.mark.parametrize(
    "answer",
    [
        lambda s: get_job(s),
        lambda s: get_job(s, "0123456789abcdef0123456789abcdef"),  # 404
        lambda s: requests.get(f"{s.url}/v1/batch-query/jobs/{sim.RUNNING_JOB_ID}", timeout=5),
        lambda s: requests.get(
            f"{s.url}/v1/files/402881824835bb2a01483c19f8190259", auth=AUTH, timeout=5
        ),
        lambda s: requests.get(
            f"{s.url}/v1/batch-query/jobs/partner/{sim.DEMO_PARTNER}/project/{sim.DEMO_PROJECT}",
            auth=AUTH,
            timeout=5,
        ),
        sign_in,
    ],
    ids=["job", "unknown job", "unauthenticated", "file", "last completed", "token"],
)
def test_every_answer_states_the_allowance(simulator, answer):
    headers = answer(simulator).headers

    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(
        name.lower() for name in headers
    )


@pytest.mark.parametrize(
    ("tenant_type", "policies"),
    [
        ("production", "50000;w=60, 2250000;w=3600, 27000000;w=86400"),
        ("developer_sandbox", "12500;w=60, 25000;w=3600, 50000;w=86400"),
        ("api_sandbox", "2500;w=60, 5000;w=3600, 10000;w=86400"),
    ],
)
def test_each_tenant_type_has_zuoras_documented_limits(simulator, tenant_type, policies):
    simulator.set_budget(tenant_type)

    assert get_job(simulator).headers["ratelimit-limit"].endswith(policies)


def test_the_window_closest_to_running_out_is_stated(simulator):
    simulator.set_budget("api_sandbox", {3600: 100})
    get_job(simulator)

    headers = get_job(simulator).headers

    assert headers["ratelimit-limit"] == "100, 2500;w=60, 100;w=3600, 10000;w=86400"
    assert (headers["ratelimit-remaining"], headers["ratelimit-reset"]) == ("98", "3600")


def test_sign_ins_are_counted_apart(simulator):
    simulator.set_budget("api_sandbox", {3600: 1})
    get_job(simulator)

    answer = sign_in(simulator)

    assert answer.status_code == 200
    assert answer.headers["ratelimit-limit"].endswith("2000;w=60, 67500;w=3600, 810000;w=86400")


def test_a_used_up_allowance_is_answered_429_with_retry_after(simulator, sim_clock):
    simulator.set_budget("api_sandbox", {3600: 2})
    get_job(simulator)
    sim_clock.advance(600)
    get_job(simulator)

    answer = get_job(simulator)

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3000"
    assert answer.headers["ratelimit-remaining"] == "0"
    assert answer.headers["ratelimit-reset"] == "3000"
    assert answer.json()["reasons"][0]["code"] == 50000070


def test_the_allowance_comes_back_when_its_window_resets(simulator, sim_clock):
    simulator.set_budget("api_sandbox", {3600: 1})
    get_job(simulator)
    sim_clock.advance(3600)

    assert get_job(simulator).status_code == 200


def test_the_budget_is_set_over_the_control_api(simulator):
    answer = requests.post(
        f"{simulator.url}/_simulator/budget",
        json={"tenant_type": "developer_sandbox", "limits": {"86400": 7}},
        timeout=5,
    )

    assert answer.status_code == 200
    assert get_job(simulator).headers["ratelimit-limit"].startswith("7, 12500;w=60, 25000;w=3600")


def test_an_unknown_tenant_type_is_refused_over_the_control_api(simulator):
    answer = requests.post(
        f"{simulator.url}/_simulator/budget", json={"tenant_type": "staging"}, timeout=5
    )

    assert answer.status_code == 400


def test_the_constructor_chooses_the_tenant_type():
    simulator = sim.Simulator(tenant_type="api_sandbox", limits={60: 3})

    assert simulator.budget()[0] == {"window": 60, "limit": 3, "remaining": 3}
