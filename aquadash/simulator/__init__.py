"""A stand-in for Zuora's AQuA API, for the demo and for tests over real HTTP.

    sim = Simulator(clock=fake_clock)
    with serve(sim) as running:
        url = f"{running.url}/v1/batch-query/jobs/{RUNNING_JOB_ID}"
        requests.get(url, auth=(DEMO_USERNAME, DEMO_PASSWORD), timeout=5)

SIMULATOR.md describes the endpoints, the seeded catalogue, faults and counters.
"""

from aquadash.simulator.app import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    NO_AQUA_CLIENT_ID,
    NO_AQUA_CLIENT_SECRET,
    NO_AQUA_PASSWORD,
    NO_AQUA_USERNAME,
    RecordedRequest,
    Simulator,
)
from aquadash.simulator.catalogue import (
    ABORTED_JOB_ID,
    CANCELLED_JOB_ID,
    CATALOGUE,
    DELETED_NOT_ALLOWED_JOB_ID,
    DELETED_SECTION_JOB_ID,
    DEMO_PARTNER,
    DEMO_PROJECT,
    DOC_EIGHTEEN_SEGMENTS_JOB_ID,
    DOC_FILEID_JOB_ID,
    DOC_SEGMENTS_JOB_ID,
    ERROR_JOB_ID,
    EXPIRED_JOB_ID,
    FIFTY_BATCHES_JOB_ID,
    FULL_LOAD_JOB_ID,
    GZIP_JOB_ID,
    INCREMENTAL_JOB_ID,
    MANY_SEGMENTS_JOB_ID,
    MULTI_BATCH_JOB_ID,
    NOTES_JOB_ID,
    NUMERIC_VERSION_JOB_ID,
    PGP_JOB_ID,
    PURGED_FILES_JOB_ID,
    QUERIES_IGNORED_JOB_ID,
    RUNNING_JOB_ID,
    SUBMITTED_JOB_ID,
    UTC_TIMES_JOB_ID,
    ZIP_JOB_ID,
)
from aquadash.simulator.faults import KINDS as FAULT_KINDS
from aquadash.simulator.server import Running, serve

__all__ = [
    "ABORTED_JOB_ID",
    "CANCELLED_JOB_ID",
    "CATALOGUE",
    "DELETED_NOT_ALLOWED_JOB_ID",
    "DELETED_SECTION_JOB_ID",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_PARTNER",
    "DEMO_PASSWORD",
    "DEMO_PROJECT",
    "DEMO_USERNAME",
    "DOC_FILEID_JOB_ID",
    "DOC_SEGMENTS_JOB_ID",
    "ERROR_JOB_ID",
    "EXPIRED_JOB_ID",
    "FAULT_KINDS",
    "FIFTY_BATCHES_JOB_ID",
    "FULL_LOAD_JOB_ID",
    "GZIP_JOB_ID",
    "INCREMENTAL_JOB_ID",
    "MANY_SEGMENTS_JOB_ID",
    "MULTI_BATCH_JOB_ID",
    "NO_AQUA_CLIENT_ID",
    "NO_AQUA_CLIENT_SECRET",
    "NO_AQUA_PASSWORD",
    "NO_AQUA_USERNAME",
    "NOTES_JOB_ID",
    "NUMERIC_VERSION_JOB_ID",
    "PGP_JOB_ID",
    "PURGED_FILES_JOB_ID",
    "QUERIES_IGNORED_JOB_ID",
    "RUNNING_JOB_ID",
    "RecordedRequest",
    "Running",
    "SUBMITTED_JOB_ID",
    "Simulator",
    "UTC_TIMES_JOB_ID",
    "ZIP_JOB_ID",
    "serve",
    "DOC_EIGHTEEN_SEGMENTS_JOB_ID",
]
