"""Finding a job by ID in any tenant the person may see.

What aquadash stored answers first, without a call. Otherwise every visible tenant is asked,
each once, a few at a time, through `jobs.fetch_job` (the single-flight path, with its circuit
breaker, shared failures and rate limits), and the search ends at AQUADASH_FIND_SECONDS however
slow a tenant is: a tenant still asking by then is reported as not having answered.
"""

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections

from aquadash import jobs, zuora
from aquadash.models import JobSnapshot, Tenant

NOT_ANSWERING = "Zuora was not answering: try again"


@dataclass(frozen=True)
class Answer:
    """What one tenant said about the job."""

    tenant: Tenant
    found: bool
    said: str  # in words: "has it (completed)", "does not have it", the error's message
    answered: bool = True  # False: could not say (down, slow, rate limited, credentials)
    advice: str = ""  # by cause, when not found: whether asking again can help


@dataclass(frozen=True)
class Search:
    job_id: str
    answers: list[Answer]
    from_storage: bool  # answered from what aquadash stored: Zuora was not asked

    @property
    def matches(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.found]

    @property
    def certain(self) -> bool:
        """Every tenant answered: "not found" means not found."""
        return all(answer.answered for answer in self.answers)


def find(tenants: list[Tenant], job_id: str, *, user: AbstractBaseUser) -> Search:
    """Where the job is among `tenants`, which must be those `user` may see."""
    job_id = zuora.check_id(job_id, what="job")
    stored = JobSnapshot.objects.filter(tenant__in=tenants, job_id=job_id).select_related("tenant")
    if stored := list(stored):
        answers = [Answer(each.tenant, True, _has_it(each.status)) for each in stored]
        return Search(job_id, answers, from_storage=True)

    threads = max(1, min(settings.AQUADASH_FIND_THREADS, len(tenants)))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="find")
    asking = {tenant: pool.submit(_ask, tenant, job_id, user) for tenant in tenants}
    wait(asking.values(), timeout=settings.AQUADASH_FIND_SECONDS)
    # Those still asking go on in the background and store what they learn; nobody waits.
    pool.shutdown(wait=False, cancel_futures=True)
    answers = [
        future.result()
        if future.done() and not future.cancelled()
        else Answer(
            tenant,
            False,
            f"did not answer within {settings.AQUADASH_FIND_SECONDS:g} seconds",
            answered=False,
            advice=NOT_ANSWERING,
        )
        for tenant, future in asking.items()
    ]
    return Search(job_id, answers, from_storage=False)


def _ask(tenant: Tenant, job_id: str, user: AbstractBaseUser) -> Answer:
    try:
        state = jobs.fetch_job(tenant, job_id, user=user)
    except zuora.JobNotFound:
        return Answer(tenant, False, "does not have it", advice="no such job")
    except zuora.ZuoraError as exc:
        return Answer(tenant, False, exc.message, answered=False, advice=_advice(exc))
    finally:
        connections.close_all()  # this thread's own database connection
    return Answer(tenant, True, _has_it(state.job.status))


def _advice(exc: zuora.ZuoraError) -> str:
    """Whether trying the search again can help with what this tenant answered."""
    if isinstance(exc, zuora.CredentialsRejected):
        return "credentials rejected: retrying will not help"
    if isinstance(exc, zuora.RateLimited):
        return "Zuora asks us to slow down: try again in a minute"
    if isinstance(exc, zuora.ZuoraUnavailable):
        return NOT_ANSWERING
    if exc.next_step == "retry":
        return f"{exc.summary}: try again"
    return f"{exc.summary}: retrying will not help"


def _has_it(status: str) -> str:
    return f"has it ({status})"
