"""The jobs a new simulator already knows: one for each shape of job the AQuA API can return.

IDs are fixed so the demo and tests can name them. Times are relative to the simulator's start,
so the 3-day file purge and the 180-day job retention mean something; only Zuora's two
documentation examples are served exactly as documented.
"""

import json
from typing import Any

from aquadash.simulator.jobs import SEGMENT_ROWS, Batch, Job, cut, derived_id, segment_sizes

HOUR = 3600.0
DAY = 24 * HOUR

DOC_FILEID_JOB_ID = "402881824835bb2a01483c19f7d70256"
DOC_SEGMENTS_JOB_ID = "e20b07474841608a01484592147005d2"
MULTI_BATCH_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000101"
RUNNING_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000102"
SUBMITTED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000103"
ABORTED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000104"
ERROR_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000105"
CANCELLED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000106"
FULL_LOAD_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000107"
MANY_SEGMENTS_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000108"
INCREMENTAL_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000109"
DELETED_SECTION_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000110"
PGP_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000111"
GZIP_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000112"
ZIP_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000113"
NUMERIC_VERSION_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000114"
DELETED_NOT_ALLOWED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000115"
EXPIRED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000116"
PURGED_FILES_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000117"
FIFTY_BATCHES_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000118"
NOTES_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000119"
UTC_TIMES_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000120"
QUERIES_IGNORED_JOB_ID = "2c92c0f96d8a3b1e016d8a0000000121"
DOC_EIGHTEEN_SEGMENTS_JOB_ID = "402881824835bb2a0148419305d402a6"

# A stateful session whose last completed job is INCREMENTAL_JOB_ID (after FULL_LOAD_JOB_ID).
DEMO_PARTNER = "aquadash"
DEMO_PROJECT = "a0B5f00000DemoP1"

CATALOGUE: dict[str, str] = {
    DOC_FILEID_JOB_ID: "Zuora's documented completed job with one fileId, byte for byte.",
    DOC_SEGMENTS_JOB_ID: "Zuora's documented completed job with segments, byte for byte.",
    MULTI_BATCH_JOB_ID: "Completed, 4 batches: zoql and zoqlexport, some without full or "
    "apiVersion, one with 0 records.",
    RUNNING_JOB_ID: "Executing from its first GET (one batch already done); the other 4 batches "
    "finish one per batch_seconds, then it stays completed.",
    SUBMITTED_JOB_ID: "Stays submitted with pending batches (queued); cancel it with DELETE.",
    ABORTED_JOB_ID: "Aborted: one batch completed, one aborted with a message.",
    ERROR_JOB_ID: "Error: top-level errorCode 90029 and message.",
    CANCELLED_JOB_ID: "Cancelled: one batch completed, one still submitted.",
    FULL_LOAD_JOB_ID: f"Stateful full load ({DEMO_PARTNER}/{DEMO_PROJECT}): 3,000,000 records in "
    "6 segments, plus a 1-segment batch; query-label headers.",
    MANY_SEGMENTS_JOB_ID: "Stateful full load with 2000 segments (999,876,543 records).",
    INCREMENTAL_JOB_ID: f"Stateful incremental load ({DEMO_PARTNER}/{DEMO_PROJECT}, full: false, "
    "incrementalTime, offset, a Boolean deleted column); the pair's last completed job.",
    DELETED_SECTION_JOB_ID: "Stateless zoql batch with a deleted section (Numeric, forceExport) "
    "and neither full nor apiVersion.",
    PGP_JOB_ID: "Completed, encrypted: pgp (the file is scrambled ASCII armor, not real PGP).",
    GZIP_JOB_ID: "Completed, format GZIP.",
    ZIP_JOB_ID: "Completed, format ZIP, two batches.",
    NUMERIC_VERSION_JOB_ID: 'Completed, "version": 1 (a number) and "recordCount": "1234" (a '
    "string).",
    DELETED_NOT_ALLOWED_JOB_ID: "Aborted: a batch with status deleted_notallowed and a message.",
    EXPIRED_JOB_ID: "Completed 200 days ago: purged, answered as an unknown job.",
    PURGED_FILES_JOB_ID: "Completed 4 days ago: the job is there, its file is gone (404).",
    FIFTY_BATCHES_JOB_ID: "Completed with 50 batches, the most a job may have.",
    NOTES_JOB_ID: "Completed; its file has quoted newlines, accents, numbers with leading zeros "
    "or 18 digits, dates and timestamps: a test of CSV readers and spreadsheets.",
    UTC_TIMES_JOB_ID: "Completed, submitted with dateTimeUtc as Stitch does: startTime and the "
    'timestamps in its file are UTC with an offset ("2021-01-18T17:13:48+0000").',
    QUERIES_IGNORED_JOB_ID: "Completed with errorCode 90018: queries on objects the user may not "
    "read were ignored.",
    DOC_EIGHTEEN_SEGMENTS_JOB_ID: "Zuora's file-segmentation example as documented: 88 records in "
    "18 segments of a few rows each.",
}

# Zuora's "Get Job Results" examples, byte for byte (the second keeps its odd spacing).
DOC_FILEID_DOCUMENT = """{
    "batches": [
        {
            "full": true,
            "name": "AccountingPeriod",
            "message": "",
            "query": "select Id,StartDate,EndDate,FiscalYear,Name,Status from AccountingPeriod",
            "status": "completed",
            "recordCount": 1,
            "apiVersion": "60.0",
            "fileId": "402881824835bb2a01483c19f8190259",
            "batchType": "zoqlexport",
            "batchId": "402881824835bb2a01483c19f7da0257"
        }
    ],
    "project": "00170000011K3Ub",
    "partner": "salesforce",
    "name": "Example",
    "id": "402881824835bb2a01483c19f7d70256",
    "version": "1.1",
    "format": "CSV",
    "startTime": "2014-09-03 08:20:07",
    "status": "completed",
    "encrypted": "none"
}
"""

DOC_SEGMENTS_DOCUMENT = """{
  "batches" : [ {
    "full" : true,
    "name" : "AccountingPeriod",
    "query" : "select Id,StartDate,EndDate,FiscalYear,Name,Status from AccountingPeriod",
    "status" : "completed",
    "recordCount" : 132,
    "batchId" : "e20b07474841608a01484592147305d3",
    "apiVersion" : "59.0",
    "segments" : [ "e20b07474841608a01484592159c05d7" ],
    "batchType" : "zoqlexport" } ],
  "project" : "00170000011K3Ub",
  "partner" : "salesforce",
  "name" : "Example", "id" : "e20b07474841608a01484592147005d2",
  "version" : "1.1",
  "startTime" : "2014-09-05 04:27:54",
  "format" : "CSV",
  "status" : "completed",
  "encrypted" : "none"
  }
"""

# Zuora's file-segmentation example (the GET answer), as the page prints it on one line.
DOC_EIGHTEEN_SEGMENTS_DOCUMENT = (
    '{ "batches": [ { "deleted": { "column": "Deleted", "format": "Boolean" }, "full": true, "n'
    'ame": "Account", "query": "select Id,CreditBalance,Name,Balance,TaxExemptStatus,AutoPay,Cu'
    "rrency,PaymentGateway,PaymentTerm,SalesRepName,TaxExemptIssuingJurisdiction,TaxExemptEffec"
    "tiveDate,TaxExemptExpirationDate,TaxExemptCertificateType,LastInvoiceDate,Status,TotalInvo"
    "iceBalance,CreatedDate,UpdatedDate, ParentId, CustomerServiceRepName, BillToContact.Id, So"
    'ldToContact.Id from Account", "status": "completed", "recordCount": 88, "apiVersion": "60.'
    '0", "batchType": "zoqlexport", "batchId": "402881824835bb2a0148419305d602a7", "segments": '
    '[ "402881824835bb2a01484193065e02ab", "402881824835bb2a01484193066602ac", "402881824835bb2'
    'a01484193066e02ad", "402881824835bb2a01484193067602ae", "402881824835bb2a01484193067f02af"'
    ', "402881824835bb2a01484193068602b0", "402881824835bb2a01484193068e02b1", "402881824835bb2'
    'a01484193069502b2", "402881824835bb2a01484193069c02b3", "402881824835bb2a0148419306a202b4"'
    ', "402881824835bb2a0148419306a902b5", "402881824835bb2a0148419306b102b6", "402881824835bb2'
    'a0148419306b802b7", "402881824835bb2a0148419306bf02b8", "402881824835bb2a0148419306c502b9"'
    ', "402881824835bb2a0148419306cc02ba", "402881824835bb2a0148419306d302bb", "402881824835bb2'
    'a0148419306d902bc" ] } ], "project": "00170000011K3Ub", "partner": "salesforce", "name": "'
    'Example", "id": "402881824835bb2a0148419305d402a6", "version": "1.1", "format": "CSV", "st'
    'artTime": "2014-09-04 09:50:27", "status": "completed", "encrypted": "none" }'
)

ACCOUNTS = "select Id, Name, Balance, Status, UpdatedDate from Account"
INVOICE_ITEMS = (
    "select InvoiceItem.Id, Invoice.InvoiceNumber, InvoiceItem.ChargeAmount, Account.Name, "
    "InvoiceItem.UpdatedDate from InvoiceItem"
)
NOTES = (
    "select Id, AccountNumber, Name, Notes, Balance, Reference, CreatedDate, EffectiveDate "
    "from Account"
)
OBJECTS = [
    "Account",
    "Invoice",
    "Payment",
    "Subscription",
    "Product",
    "RatePlan",
    "Contact",
    "CreditMemo",
    "DebitMemo",
    "Refund",
]


def seed(now: float) -> list[Job]:
    """The catalogue's jobs for a simulator started at `now`."""
    stateful = {"partner": DEMO_PARTNER, "project": DEMO_PROJECT}
    # One job per entry, laid out as a table; the formatter would give each argument a line.
    jobs = [
        documented(DOC_FILEID_DOCUMENT, now - 2 * HOUR),
        documented(DOC_SEGMENTS_DOCUMENT, now - 1 * HOUR),
        job(MULTI_BATCH_JOB_ID, "Month-end extract", now - 2 * HOUR, [
            batch(MULTI_BATCH_JOB_ID, 0, "Accounts", ACCOUNTS, 1250, batch_type="zoql"),
            batch(MULTI_BATCH_JOB_ID, 1, "InvoiceItems", INVOICE_ITEMS, 8421, full=None,
                  api_version="145.0"),
            batch(MULTI_BATCH_JOB_ID, 2, "Subscriptions",
                  "select Id, Name, Status, TermStartDate from Subscription", 311,
                  batch_type="zoql", full=None, api_version=None),
            batch(MULTI_BATCH_JOB_ID, 3, "Payments",
                  "select Id, Amount, EffectiveDate, Account.Name from Payment", 0,
                  api_version=None),
        ]),
        job(RUNNING_JOB_ID, "Nightly finance export", None, [
            batch(RUNNING_JOB_ID, n, obj, f"select Id, Name, UpdatedDate from {obj}", 100 * n + 7)  # noqa: S608
            for n, obj in enumerate(OBJECTS[:5])
        ], status=None, version="1.1"),
        job(SUBMITTED_JOB_ID, "Queued behind month-end", now - 5 * 60, [
            batch(SUBMITTED_JOB_ID, 0, "Accounts", ACCOUNTS, 0, status="pending"),
            batch(SUBMITTED_JOB_ID, 1, "InvoiceItems", INVOICE_ITEMS, 0, status="pending"),
        ], status="submitted"),
        job(ABORTED_JOB_ID, "Broken field", now - 3 * HOUR, [
            batch(ABORTED_JOB_ID, 0, "Accounts", ACCOUNTS, 42),
            batch(ABORTED_JOB_ID, 1, "Invoices", "select Id, NoSuchField from Invoice", 0,
                  status="aborted", message="Error.zoql.noSuchFieldId: There is no field "
                  "'NoSuchField' on the object 'Invoice'."),
        ], status="aborted"),
        job(ERROR_JOB_ID, "Stuck in processing", now - 6 * HOUR, [
            batch(ERROR_JOB_ID, 0, "Accounts", ACCOUNTS, 0, status="pending"),
        ], status="error", extra={
            "errorCode": "90029",
            "message": "The job was marked Error because it stayed too long in processing.",
        }),
        job(CANCELLED_JOB_ID, "Cancelled by a user", now - 4 * HOUR, [
            batch(CANCELLED_JOB_ID, 0, "Accounts", ACCOUNTS, 77),
            batch(CANCELLED_JOB_ID, 1, "InvoiceItems", INVOICE_ITEMS, 0, status="submitted"),
        ], status="cancelled"),
        job(FULL_LOAD_JOB_ID, "Warehouse full load", now - 3 * HOUR, [
            batch(FULL_LOAD_JOB_ID, 0, "InvoiceItem", INVOICE_ITEMS, 3_000_000, segmented=True),
            batch(FULL_LOAD_JOB_ID, 1, "Account", ACCOUNTS, 12_345, segmented=True),
        ], version="1.1", extra=stateful, use_query_labels=True),
        job(MANY_SEGMENTS_JOB_ID, "Usage since 2015", now - 5 * HOUR, [
            batch(MANY_SEGMENTS_JOB_ID, 0, "Usage",
                  "select Id, AccountId, Quantity, StartDateTime from Usage", 999_876_543,
                  segmented=True),
        ], version="1.1", extra={"partner": DEMO_PARTNER, "project": "a0B5f00000Stress"}),
        job(INCREMENTAL_JOB_ID, "Warehouse increment", now - 1 * HOUR, [
            batch(INCREMENTAL_JOB_ID, 0, "InvoiceItem", INVOICE_ITEMS, 1_234, full=False),
            batch(INCREMENTAL_JOB_ID, 1, "Account", ACCOUNTS, 56, full=False,
                  deleted={"column": "IsDeleted", "format": "Boolean"}),
        ], version="1.1", extra={
            **stateful,
            "incrementalTime": int((now - DAY) * 1000),
            "offset": 600,
        }),
        job(DELETED_SECTION_JOB_ID, "Deleted subscriptions", now - 2 * HOUR, [
            batch(DELETED_SECTION_JOB_ID, 0, "Subscriptions",
                  "select Id, Name, Status from Subscription", 200, batch_type="zoql",
                  full=None, api_version=None,
                  deleted={"column": "Deleted", "format": "Numeric", "forceExport": True}),
        ]),
        job(PGP_JOB_ID, "Encrypted accounts", now - 2 * HOUR, [
            batch(PGP_JOB_ID, 0, "Accounts", ACCOUNTS, 500),
        ], encrypted="pgp"),
        job(GZIP_JOB_ID, "Gzipped invoice items", now - 2 * HOUR, [
            batch(GZIP_JOB_ID, 0, "InvoiceItems", INVOICE_ITEMS, 2_500),
        ], file_format="GZIP"),
        job(ZIP_JOB_ID, "Zipped extract", now - 2 * HOUR, [
            batch(ZIP_JOB_ID, 0, "Accounts", ACCOUNTS, 900),
            batch(ZIP_JOB_ID, 1, "Products", "select Id, Name from Product", 10),
        ], file_format="ZIP"),
        job(NUMERIC_VERSION_JOB_ID, "Older tenant", now - 2 * HOUR, [
            batch(NUMERIC_VERSION_JOB_ID, 0, "Accounts", ACCOUNTS, 1_234, count_as_string=True),
        ], version=1),
        job(DELETED_NOT_ALLOWED_JOB_ID, "Deleted periods", now - 2 * HOUR, [
            batch(DELETED_NOT_ALLOWED_JOB_ID, 0, "AccountingPeriods",
                  "select Id, Name, Status from AccountingPeriod", 0, status="deleted_notallowed",
                  deleted={"column": "IsDeleted", "format": "Boolean"},
                  message="Objects included in the queries do not support the querying of "
                  "deleted records. Remove Deleted section in the JSON request and retry the "
                  "request"),
        ], status="aborted", version="1.1", extra=stateful),
        job(EXPIRED_JOB_ID, "Last year's audit", now - 200 * DAY, [
            batch(EXPIRED_JOB_ID, 0, "Accounts", ACCOUNTS, 10),
        ]),
        job(PURGED_FILES_JOB_ID, "Four days old", now - 4 * DAY, [
            batch(PURGED_FILES_JOB_ID, 0, "Accounts", ACCOUNTS, 25),
        ]),
        job(FIFTY_BATCHES_JOB_ID, "Everything", now - 2 * HOUR, [
            batch(FIFTY_BATCHES_JOB_ID, n, f"{OBJECTS[n % 10]}{n + 1:02d}",
                  f"select Id, Name, CreatedDate from {OBJECTS[n % 10]}", n * 3)  # noqa: S608
            for n in range(50)
        ]),
        job(NOTES_JOB_ID, "Accounts with notes", now - 2 * HOUR, [
            batch(NOTES_JOB_ID, 0, "Accounts", NOTES, 240),
        ]),
        job(UTC_TIMES_JOB_ID, "Stitch accounts (UTC)", now - 90 * 60, [
            batch(UTC_TIMES_JOB_ID, 0, "Accounts", ACCOUNTS, 320),
        ], version="1.1", utc_times=True),
        # AQuA error 90018: the user may not read an object, so Zuora ran the job without the
        # queries that use it. Which batches such a job then lists is not documented.
        job(QUERIES_IGNORED_JOB_ID, "Accounts and payments", now - 2 * HOUR, [
            batch(QUERIES_IGNORED_JOB_ID, 0, "Accounts", ACCOUNTS, 310),
        ], extra={
            "errorCode": "90018",
            "message": "The API user does not have permission to access one or more objects "
            "in the queries. Those queries are ignored.",
        }),
        # Before DOC_SEGMENTS_JOB_ID, which stays the salesforce session's last completed job.
        documented(DOC_EIGHTEEN_SEGMENTS_DOCUMENT, now - 3 * HOUR),
    ]  # fmt: skip
    return jobs


def job(
    job_id: str,
    name: str,
    created: float | None,
    batches: list[Batch],
    *,
    status: str | None = "completed",
    version: Any = "1.0",
    file_format: str = "CSV",
    encrypted: str = "none",
    extra: dict[str, Any] | None = None,
    use_query_labels: bool = False,
    utc_times: bool = False,
) -> Job:
    echo = {"name": name, "version": version, "format": file_format, "encrypted": encrypted}
    echo["sourceData"] = "LIVE"  # Zuora's reference samples always show it
    return Job(
        job_id=job_id,
        echo=echo | (extra or {}),
        batches=batches,
        created=created,
        status=status,
        use_query_labels=use_query_labels,
        utc_times=utc_times,
    )


def batch(
    job_id: str,
    number: int,
    name: str,
    query: str,
    record_count: int,
    *,
    batch_type: str = "zoqlexport",
    api_version: str | None = "91.0",
    full: bool | None = True,
    deleted: dict[str, Any] | None = None,
    segmented: bool = False,
    status: str | None = None,
    message: str = "",
    count_as_string: bool = False,
    rows_per_segment: int = SEGMENT_ROWS,
) -> Batch:
    """A seeded batch; `None` leaves a field out, as some of Zuora's examples do."""
    echo: dict[str, Any] = {"name": name, "query": query, "batchType": batch_type}
    if api_version is not None:
        echo["apiVersion"] = api_version
    if full is not None:
        echo["full"] = full
    if deleted is not None:
        echo["deleted"] = deleted
    batch_id = derived_id(job_id, "batch", number)
    sizes = cut(record_count, rows_per_segment) if segmented else []
    if segmented:
        file_ids = [derived_id(batch_id, "segment", n) for n in range(len(sizes))]
    else:
        file_ids = [derived_id(batch_id, "file")]
    return Batch(
        batch_id,
        echo,
        record_count,
        file_ids,
        segmented,
        status,
        message,
        count_as_string,
        sizes,
    )


def documented(document: str, created: float) -> Job:
    """A job from one of Zuora's examples: served verbatim, its files made up like any other."""
    data = json.loads(document)
    batches = [
        Batch(
            batch_id=item["batchId"],
            echo={key: item[key] for key in ("name", "query", "batchType") if key in item},
            record_count=int(item["recordCount"]),
            file_ids=item.get("segments") or [item["fileId"]],
            segmented="segments" in item,
            status=item["status"],
            # Zuora's 18 segments for 88 records: spread unevenly, each file a few rows.
            sizes=segment_sizes(int(item["recordCount"]), len(item["segments"]), item["batchId"])
            if "segments" in item
            else [],
        )
        for item in data["batches"]
    ]
    echo = {
        key: data[key] for key in ("name", "version", "format", "encrypted", "partner", "project")
    }
    return Job(data["id"], echo, batches, created, status=data["status"], document=document)
