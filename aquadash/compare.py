"""A stateful job beside the previous completed run of its session (partner and project).

The costly failures of stateful exports are silent: a batch that suddenly returns a tenth of
its usual records, an increment lost when a run was repeated, a partner or project that
differs from the usual one only by case or a trailing space and so starts a new full load.
This puts each batch (matched by name) beside the run before and flags what changed.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from aquadash import breaker, jobs, timeline, zuora
from aquadash.models import JobSnapshot, Tenant

NEVER = datetime.min.replace(tzinfo=UTC)  # the start of a job Zuora gave no start time


@dataclass(frozen=True)
class BatchChange:
    name: str
    before: zuora.Batch | None  # None: new in this run
    after: zuora.Batch | None  # None: missing from this run
    before_ran: timedelta | None
    after_ran: timedelta | None

    @property
    def change(self) -> float | None:
        """Records, in % of the previous run's; None when either is unknown."""
        before = self.before.record_count if self.before else None
        after = self.after.record_count if self.after else None
        if before is None or after is None:
            return None
        if before == 0:
            return 0.0 if after == 0 else float("inf")
        return 100 * (after - before) / before

    @property
    def flagged(self) -> bool:
        """Missing, new, or records changed by more than AQUADASH_COMPARE_THRESHOLD %."""
        change = self.change
        if self.before is None or self.after is None:
            return True
        return change is not None and abs(change) > settings.AQUADASH_COMPARE_THRESHOLD


@dataclass(frozen=True)
class Comparison:
    job: zuora.Job
    previous: zuora.Job | None
    from_zuora: bool  # the previous run came from Zuora's last-completed endpoint
    batches: list[BatchChange]
    look_alikes: list[tuple[str, str]]  # known sessions equal to this one but for case/spaces
    problem: str = ""  # why no previous run could be found, when Zuora could not say
    # The latest earlier run when it loaded the other way (full against incremental): its
    # record counts measure something else, so it is named but not compared.
    other_kind: zuora.Job | None = None

    @property
    def loaded_in_full(self) -> bool | None:
        """Every batch of this run was a full load (True), some was incremental (False), or
        Zuora did not say (None): what is known of whether the run continued a session."""
        return loaded_in_full(batch.full for batch in self.job.batches)

    @property
    def other_kind_in_full(self) -> bool | None:
        return loaded_in_full(batch.full for batch in self.other_kind.batches)

    @property
    def shows_records(self) -> bool:
        return any(self._values(lambda batch: batch.record_count))

    @property
    def shows_load(self) -> bool:
        return any(self._values(lambda batch: batch.full))

    @property
    def shows_ran(self) -> bool:
        return any(row.before_ran or row.after_ran for row in self.batches)

    def _values(self, field: Callable[[zuora.Batch], object]) -> Iterator[bool]:
        """Whether each batch on either side has a value for `field`: columns without any
        value are left out rather than shown as rows of dashes."""
        for row in self.batches:
            for batch in (row.before, row.after):
                yield batch is not None and field(batch) is not None


def loaded_in_full(loads: Iterable[bool | None]) -> bool | None:
    """A run loaded in full (True) when every batch did, incrementally (False) when some batch
    did, or unknown (None) when Zuora did not say."""
    loads = set(loads)
    if False in loads:
        return False
    return True if loads == {True} else None


def comparable(one: bool | None, other: bool | None) -> bool:
    """A full load and an incremental one count different things; unknown compares with any."""
    return one is None or other is None or one == other


def compare(tenant: Tenant, snapshot: JobSnapshot) -> Comparison:
    job = snapshot.job()
    look_alikes = _look_alikes(tenant, job)
    previous, from_zuora, problem = _previous_run(tenant, job, snapshot)
    if previous is None:
        return Comparison(job, None, False, [], look_alikes, problem)
    previous_job = previous.job()
    if not comparable(
        loaded_in_full(batch.full for batch in job.batches),
        loaded_in_full(batch.full for batch in previous_job.batches),
    ):
        return Comparison(job, None, from_zuora, [], look_alikes, other_kind=previous_job)
    ran_now, ran_before = (
        _durations(job, snapshot.timeline),
        _durations(previous_job, previous.timeline),
    )
    before = {batch.name: batch for batch in previous_job.batches}
    after = {batch.name: batch for batch in job.batches}
    names = list(after) + [name for name in before if name not in after]
    changes = [
        BatchChange(
            name or "(unnamed)",
            before.get(name),
            after.get(name),
            ran_before.get(name),
            ran_now.get(name),
        )
        for name in names
    ]
    return Comparison(job, previous_job, from_zuora, changes, look_alikes)


def _previous_run(
    tenant: Tenant, job: zuora.Job, snapshot: JobSnapshot
) -> tuple[JobSnapshot | None, bool, str]:
    """The latest completed run of the session that started before `job` and loaded the same
    way (full or incremental), else the latest earlier run of the other kind: stored, else
    from Zuora when its last completed job is older than this one (and then stored too)."""
    same_session = JobSnapshot.objects.filter(
        tenant=tenant, status="completed", raw__partner=job.partner, raw__project=job.project
    ).exclude(pk=snapshot.pk)
    # Only start times and load flags are read to choose: parsing each stored job would cost
    # far more.
    candidates = same_session.order_by("-last_fetched_at").values_list(
        "pk", "raw__startTime", "raw__batches"
    )
    kind = loaded_in_full(batch.full for batch in job.batches)
    earlier = sorted(
        (
            (started, pk, loaded_in_full(_full(each) for each in batches or ()))
            for pk, at, batches in candidates[:200]
            if (started := zuora.zuora_time(at, tenant.zoneinfo) or NEVER) < _started(job)
        ),
        reverse=True,
    )
    if earlier:
        alike = [pk for _, pk, other in earlier if comparable(kind, other)]
        return tenant.jobs.get(pk=(alike or [earlier[0][1]])[0]), False, ""
    try:
        with breaker.guarded(tenant):
            last = zuora.get_last_completed_job(
                tenant.zuora_connection(), partner=job.partner, project=job.project
            )
    except (zuora.JobNotFound, zuora.UnknownPartner):  # no completed run in Zuora either
        return None, False, ""
    except zuora.ZuoraError as exc:
        return None, False, f"Zuora could not say which run came before: {exc.message}"
    if last.id == job.id or _started(last) >= _started(job):
        return None, False, ""
    return jobs.store_job(tenant, last, user=None), True, ""


def _full(batch: object) -> bool | None:
    """A stored batch's `full`, which Zuora may write as a string."""
    full = batch.get("full") if isinstance(batch, dict) else None
    if isinstance(full, str) and full.lower() in ("true", "false"):
        return full.lower() == "true"
    return full if isinstance(full, bool) else None


def _started(job: zuora.Job) -> datetime:
    return job.start_time or NEVER


def _durations(job: zuora.Job, seen: dict) -> dict[str, timedelta]:
    """How long each batch ran, where aquadash saw it start and end."""
    return {
        row.name: row.ran
        for row in timeline.for_job(job, seen, None)
        if row.ran is not None and not row.running
    }


def _look_alikes(tenant: Tenant, job: zuora.Job) -> list[tuple[str, str]]:
    """Known sessions of the tenant that equal this job's but for case or surrounding spaces.
    Whether Zuora takes them for one session is not documented: its Post Query example sends
    project "00170000011K3Ub" and echoes "00170000011k3ub"."""

    def folded(partner: str, project: str) -> tuple[str, str]:
        return partner.strip().casefold(), project.strip().casefold()

    known = (
        JobSnapshot.objects.filter(tenant=tenant, raw__has_key="partner")
        .order_by("-last_fetched_at")
        .values_list("raw__partner", "raw__project")[:1000]
    )
    here = (job.partner, job.project)
    return sorted(
        {
            (partner, project)
            for partner, project in known
            if isinstance(partner, str)
            and isinstance(project, str)
            and (partner, project) != here
            and folded(partner, project) == folded(*here)
        }
    )
