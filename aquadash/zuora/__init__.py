"""The Zuora AQuA API client: every call aquadash makes to Zuora goes through this package.

Plain arguments in (a `Connection`), frozen dataclasses out (`Job`, `Batch`), and one exception
family (`ZuoraError`) whose messages a finance user can act on. Nothing here knows about Django
requests or models, and no secret or bearer token ever reaches a message, a log record or a repr.

- `errors`: the exception family;
- `shapes`: what Zuora's answers mean, with no HTTP (statuses, `Job`, `Batch`, `parse_job`, IDs);
- `network`: where aquadash may connect (allowed hosts, public addresses, the session);
- `client`: the calls themselves, with authentication, retries and deadlines.

The package offers what the rest of aquadash uses; the modules' other names are their own.
"""

from aquadash.zuora.client import (
    MAX_RETRY_WAIT,
    Allowance,
    Connection,
    Credentials,
    ResultFile,
    TokenCache,
    cancel_job,
    check_credentials,
    get_job,
    get_last_completed_job,
    open_file,
)
from aquadash.zuora.errors import (
    CredentialsRejected,
    FileNotFound,
    FileTooLarge,
    HostNotAllowed,
    InvalidId,
    JobNotFound,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    UnexpectedRedirect,
    UnknownPartner,
    UnreadableResponse,
    WrongEnvironment,
    ZuoraError,
    ZuoraTimeout,
    ZuoraUnavailable,
)
from aquadash.zuora.network import (
    ENVIRONMENTS,
    SESSION,
    PublicOnlyConnection,
    check_base_url,
    new_session,
    proxied_session,
)
from aquadash.zuora.shapes import (
    BATCH_STATUSES,
    FINAL_BATCH_STATUSES,
    FINAL_JOB_STATUSES,
    JOB_STATUSES,
    ZUORA_ID,
    Batch,
    Job,
    check_id,
    normalize_id,
    parse_job,
    zuora_time,
)

__all__ = [
    "CredentialsRejected",
    "FileNotFound",
    "FileTooLarge",
    "HostNotAllowed",
    "InvalidId",
    "JobNotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestRejected",
    "UnexpectedRedirect",
    "UnknownPartner",
    "UnreadableResponse",
    "WrongEnvironment",
    "ZuoraError",
    "ZuoraTimeout",
    "ZuoraUnavailable",
    "BATCH_STATUSES",
    "Batch",
    "FINAL_BATCH_STATUSES",
    "FINAL_JOB_STATUSES",
    "JOB_STATUSES",
    "Job",
    "ZUORA_ID",
    "check_id",
    "normalize_id",
    "parse_job",
    "zuora_time",
    "ENVIRONMENTS",
    "PublicOnlyConnection",
    "SESSION",
    "check_base_url",
    "new_session",
    "proxied_session",
    "Allowance",
    "Connection",
    "Credentials",
    "MAX_RETRY_WAIT",
    "ResultFile",
    "TokenCache",
    "cancel_job",
    "check_credentials",
    "get_job",
    "get_last_completed_job",
    "open_file",
]
