"""The one exception family of the Zuora client: messages a finance user can act on, the
HTTP status and page each is shown with."""

from typing import Literal


class ZuoraError(Exception):
    """A call to Zuora failed; `str()` is a message for the person looking at the page."""

    http_status = 502
    summary = "Zuora call failed"  # a few words, for lists and audit trails
    title = "Zuora's answer could not be used"  # the heading of the page that shows it
    # What that page offers: "retry", "home" (look up another job: asking again cannot help),
    # "job" (back to the job's page) or "admin" (for an admin to fix the tenant).
    next_step: Literal["retry", "home", "job", "admin"] = "retry"
    retry_after: int | None = None  # seconds until asking Zuora again makes sense, if known

    def __init__(
        self, message: str, *, track_id: str = "", process_id: str = "", request_id: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        # For Zuora support: our Zuora-Track-Id, and Zuora's own Zuora-Request-Id and processId.
        # Empty when Zuora was never reached (a name that did not resolve, a refused connection).
        self.track_id = track_id
        self.process_id = process_id
        self.request_id = request_id


class InvalidId(ZuoraError):
    http_status = 400
    summary = "not a valid ID"
    title = "Not a job ID"
    next_step = "home"


class HostNotAllowed(ZuoraError):
    http_status = 502
    summary = "host not allowed"


class JobNotFound(ZuoraError):
    http_status = 404
    summary = "not found in Zuora"
    title = "No such job"
    next_step = "home"


class FileNotFound(ZuoraError):
    http_status = 404
    summary = "file deleted by Zuora"
    title = "Result file purged by Zuora"
    next_step = "job"


class FileTooLarge(ZuoraError):
    http_status = 502
    summary = "file over Zuora's size limit"
    title = "Result file too large for Zuora"
    next_step = "job"


class CredentialsRejected(ZuoraError):
    http_status = 502
    summary = "credentials rejected"
    title = "Zuora credentials problem"
    next_step = "admin"


class PermissionDenied(ZuoraError):
    """The credentials are good, but the Zuora user behind them lacks a permission: only the
    tenant's Zuora administrator can grant it, and asking again before then cannot help."""

    http_status = 502
    summary = "permission missing in Zuora"
    title = "The Zuora user lacks a permission"
    next_step = "retry"


class WrongEnvironment(CredentialsRejected):
    """The credentials work, but at another of Zuora's hosts than the tenant's environment."""

    summary = "wrong Zuora environment"
    title = "The tenant's Zuora environment is wrong"


class UnknownPartner(ZuoraError):
    http_status = 404
    summary = "partner unknown to Zuora"
    title = "Zuora does not know this partner"
    next_step = "home"


class RequestRejected(ZuoraError):
    http_status = 502
    summary = "request refused by Zuora"


class RateLimited(ZuoraError):
    http_status = 503
    summary = "rate limited"
    title = "Zuora asks us to slow down"

    def __init__(self, reason: str, *, retry_after: int | None = None, **kwargs: str) -> None:
        # The wait is worded from `retry_after` here, so an answer shared later is re-worded
        # with the time then left instead of repeating the wait Zuora first named.
        when = f"in {retry_after} seconds" if retry_after is not None else "in a minute"
        super().__init__(f"{reason} Try again {when}.", **kwargs)
        self.reason = reason
        self.retry_after = retry_after


class ZuoraUnavailable(ZuoraError):
    http_status = 503
    summary = "Zuora unavailable"
    title = "Zuora is not answering"


class ZuoraTimeout(ZuoraUnavailable):
    http_status = 504
    summary = "Zuora timed out"


class UnreadableResponse(ZuoraError):
    http_status = 502
    summary = "unreadable answer"


class UnexpectedRedirect(UnreadableResponse):
    summary = "unexpected redirect"
