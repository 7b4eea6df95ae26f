"""The worker paces itself: about one round per poll interval while a watched job runs.

Measured the way `make run` runs it: the shared cache is a database table (whose expiry, like
Redis's, counts whole seconds) and rounds are tasks in the database queue, run by db_worker.
Time is a fake clock that moves only between tasks, so a round that queues another "now"
shows up as many rounds at one moment.
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import requests
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import simulator as sim
from aquadash import watching
from aquadash.settings import not_a_task_line
from tests.watching.conftest import RUNNING, open_job, run_worker, time_passes, watch

STEP = 0.25  # seconds the clock moves when nothing is due
WATCHED_FOR = 40.0  # a young job: its pace stays AQUADASH_POLL_SECONDS throughout


@pytest.fixture
def database_cache(db, settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "aquadash_test_cache",
        },
    }
    call_command("createcachetable", verbosity=0)


@pytest.fixture
def clock(monkeypatch, sim_clock):
    """aquadash's clock (time.time and timezone.now) and the simulator's, moved together,
    starting half-way through a second, as real clocks do."""
    sim_clock.now = int(sim_clock.now) + 0.5
    monkeypatch.setattr(time, "time", sim_clock)
    monkeypatch.setattr(timezone, "now", lambda: datetime.fromtimestamp(sim_clock(), UTC))
    return sim_clock


def rounds_finished() -> int:
    rounds = DBTaskResult.objects.filter(task_path=watching.check_watches.module_path)
    return rounds.filter(status=TaskResultStatus.SUCCESSFUL).count()


def run_one_task() -> None:
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command(
            "db_worker", "--batch", "--max-tasks", "1", "--no-startup-delay", "--no-reload",
            verbosity=0,
        )  # fmt: skip


@pytest.mark.parametrize("zuora", ["answering", "down"])
def test_a_watched_job_costs_about_one_round_per_interval(
    database_cache, clock, simulator, simulator_tenant, finance, settings, zuora
):
    simulator.batch_seconds = 10_000  # the job stays submitted
    body = {"queries": [{"query": "select Id from Account"}]}
    auth = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
    job_id = requests.post(simulator.url + "/v1/batch-query/", json=body, auth=auth, timeout=5)
    watching.watch(simulator_tenant, job_id.json()["id"], finance, link="http://testserver/")
    run_one_task()  # the first look stores the job
    if zuora == "down":
        simulator.add_fault("unavailable", times=None)

    rounds = rounds_finished()
    end, at_this_moment = clock() + WATCHED_FOR, 0
    while clock() < end and at_this_moment < 50:  # 50 rounds at one moment: a flood
        before = rounds_finished()
        run_one_task()
        if rounds_finished() > before:
            at_this_moment += 1
        else:
            clock.advance(STEP)
            at_this_moment = 0

    intervals = WATCHED_FOR / settings.AQUADASH_POLL_SECONDS
    rounds = rounds_finished() - rounds
    assert rounds <= 1.2 * intervals + 1, f"{rounds} rounds in {intervals:g} intervals"


def test_the_worker_deletes_finished_tasks_older_than_the_setting_once_an_hour(
    client, simulator_tenant, settings
):
    settings.AQUADASH_TASK_DAYS = 2
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    run_worker()  # a round, finished now; the next is queued
    finished = DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL)
    old = finished.get().pk
    finished.update(finished_at=timezone.now() - timedelta(days=2, minutes=1))
    time_passes()  # an hour, too: the shared cache, which marks the last pruning, is cleared
    run_worker()

    assert not DBTaskResult.objects.filter(pk=old).exists()
    assert finished.count() == 1  # the round just run stays
    finished.update(finished_at=timezone.now() - timedelta(days=3))
    assert watching.prune_finished_tasks() == 0  # within the hour: not again
    assert finished.count() == 1


def test_the_worker_says_one_line_a_round_at_the_default_level(client, simulator_tenant, caplog):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            run_worker()
            time_passes()

    shown = [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.INFO
        and not record.name.startswith("aquadash.simulator")  # the simulator's own process
        and not_a_task_line(record)
    ]
    assert len(shown) == 3, shown
    assert all(line.startswith("Watch round: 1 job checked; next round at ") for line in shown)


@pytest.mark.parametrize(
    ("logger", "level", "shown"),
    [
        ("django.tasks", logging.INFO, False),  # "Task id=… state=RUNNING", each task twice
        ("django_tasks_db", logging.INFO, False),  # "Starting worker …"
        ("django.tasks", logging.ERROR, True),  # a task that failed
        ("aquadash.watching", logging.INFO, True),  # the round's own line
    ],
)
def test_the_task_queues_own_lines_are_quiet_at_the_default_level(logger, level, shown):
    record = logging.LogRecord(logger, level, __file__, 1, "Task id=%s", ("x",), None)

    assert not_a_task_line(record) is shown
