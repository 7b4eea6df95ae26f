"""Result files, made up on the fly: a CSV whose rows follow from the batch, then PGP and gzip
or zip as the job asked. Everything streams, so a billion-row segment costs no memory."""

import base64
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aquadash.simulator.jobs import derived_id

CHUNK_ROWS = 2_000
ZIP64_LIMIT = (1 << 31) - 1
_SELECT = re.compile(r"^\s*select\s+(?P<fields>.+?)\s+from\s+(?P<object>[\w.]+)", re.I | re.S)
# Not encryption: Zuora would encrypt with the tenant's PGP key, which the simulator does not
# have. Flipping bits keeps the armored text from being readable as CSV.
_SCRAMBLE = bytes(byte ^ 0x5A for byte in range(256))
_ARMOR_HEAD = (
    b"-----BEGIN PGP MESSAGE-----\nComment: Zuora simulator - scrambled, not encrypted\n\n"
)
_ARMOR_TAIL = b"-----END PGP MESSAGE-----\n"
_ARMOR_LINE = 57  # input bytes per 76-character base64 line

# A column makes its values for rows [first, last) at once: a list comprehension per column is
# several times faster than a call per cell, which matters for benchmarks of 1 GB downloads.
Column = Callable[[int, int], list[str]]


@dataclass(frozen=True)
class ResultFile:
    file_id: str
    seed: str  # the batch ID: the same file always has the same rows
    query: str
    deleted: dict[str, Any] | None
    start: int  # first row number of this file (segments hold slices)
    stop: int
    format: str  # CSV, GZIP or ZIP
    encrypted: str  # none or pgp
    query_labels: bool = False
    with_deleted_rows: bool = False
    utc_times: bool = False  # dateTimeUtc: timestamps as 2015-01-01T00:00:00+0000

    @property
    def content_type(self) -> str:
        if self.format == "GZIP":
            return "application/gzip"
        if self.format == "ZIP":
            return "application/zip"
        return "application/octet-stream" if self.encrypted == "pgp" else "text/csv"

    @property
    def filename(self) -> str:
        name = f"{self.file_id}.csv" + (".pgp" if self.encrypted == "pgp" else "")
        return {"GZIP": f"{name}.gz", "ZIP": f"{self.file_id}.zip"}.get(self.format, name)

    def body(self) -> tuple[Iterator[bytes], int | None]:
        """The file's bytes and, when it can be known without making them, their length."""
        chunks, length = self._csv(), self.csv_length
        if self.encrypted == "pgp":
            chunks, length = _armored(chunks), _armored_length(length)
        if self.format == "GZIP":
            return gzipped(chunks), None
        if self.format == "ZIP":
            member = self.filename.removesuffix(".zip") + ".csv"
            if self.encrypted == "pgp":
                member += ".pgp"
            return _zipped(chunks, member, length), None
        return chunks, length

    @property
    def csv_length(self) -> int:
        """The CSV's size before any PGP or compression, computed without making any rows."""
        # Every value has a fixed width except true/false flags, which are "true" only on rows
        # ending in 9: so rows come in two lengths and the total needs no rows made.
        _, columns = self._columns()
        plain, nines = (len(_rows(columns, n, n + 1).encode()) for n in (0, 9))
        nine_rows = self.stop // 10 - self.start // 10
        return len(self._header()) + (self.stop - self.start) * plain + nine_rows * (nines - plain)

    def _columns(self) -> tuple[list[str], list[Column]]:
        match = _SELECT.match(self.query)
        fields = [f.strip() for f in match["fields"].split(",")] if match else ["Id"]
        source = match["object"] if match else "Object"
        header = [_label(field, source, self.query_labels) for field in fields]
        columns = [_values(field, self.seed, self.utc_times) for field in fields]
        if self.deleted:
            header.append(str(self.deleted.get("column", "IsDeleted")))
            columns.append(_deleted_values(self.deleted, self.with_deleted_rows))
        return header, columns

    def _header(self) -> bytes:
        header, _ = self._columns()
        return (",".join(_quoted(name) for name in header) + "\n").encode()

    def _csv(self) -> Iterator[bytes]:
        _, columns = self._columns()
        yield self._header()
        for first in range(self.start, self.stop, CHUNK_ROWS):
            yield _rows(columns, first, min(self.stop, first + CHUNK_ROWS)).encode()


def _rows(columns: list[Column], first: int, last: int) -> str:
    if first >= last:
        return ""
    cells = zip(*(column(first, last) for column in columns), strict=True)
    return "\n".join(map(",".join, cells)) + "\n"


def _numbered(prefix: str, width: int, *, hexadecimal: bool = False, suffix: str = "") -> Column:
    """Values that spell out the row number in `width` digits between `prefix` and `suffix`.

    Formatting a number per cell is slow; the last three digits come from a table instead.
    """
    step, spec = (4096, "x") if hexadecimal else (1000, "d")
    lows = [format(n, f"03{spec}") + suffix for n in range(step)]

    def column(first: int, last: int) -> list[str]:
        values: list[str] = []
        for block in range(first - first % step, last, step):
            head = prefix + format(block // step, f"0{width - 3}{spec}")
            values += [head + low for low in lows[max(first, block) - block : last - block]]
        return values

    return column


def _cycling(values: list[str]) -> Column:
    """Values that repeat with the row number."""
    period = len(values)
    return lambda a, b: [values[i % period] for i in range(a, b)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if re.search(r'[",\r\n]', name) else name


def _label(field: str, source: str, query_labels: bool) -> str:
    """Header cell: `Account.Name` with useQueryLabels, else a label like `Account: Name`."""
    owner, _, name = field.rpartition(".")
    owner = owner or source
    if query_labels:
        return f"{owner}.{name}"
    return f"{re.sub(r'(?<=[a-z])(?=[A-Z])', ' ', owner)}: {name}"


def _values(field: str, seed: str, utc_times: bool = False) -> Column:
    """Deterministic values for a column, guessed from its name; each has a fixed width."""
    leaf = field.rpartition(".")[2].strip().lower()
    if leaf.endswith("id"):
        return _numbered(derived_id(seed, field)[:12], 20, hexadecimal=True)
    if "date" in leaf or "time" in leaf:
        days = [f"20{15 + i % 10}-{i % 12 + 1:02d}-{i % 28 + 1:02d}" for i in range(840)]
        if "time" in leaf or leaf in ("createddate", "updateddate"):
            layout = "{}T{:02d}:00:00+0000" if utc_times else "{} {:02d}:00:00"
            return _cycling([layout.format(day, i % 24) for i, day in enumerate(days)])
        return _cycling(days)
    if any(word in leaf for word in ("amount", "balance", "price", "total", "quantity", "tax")):
        return _cycling([f"{(i * 37) % 9000 + 1000}.{i % 100:02d}" for i in range(9000)])
    if leaf.endswith("year"):
        return _cycling([str(2015 + i) for i in range(10)])
    if leaf.endswith("status"):
        return _cycling(["Active", "Closed"])
    if leaf.startswith("is"):
        return _cycling(["false"] * 9 + ["true"])
    if leaf.endswith("number"):  # leading zeros, as account and invoice numbers have
        return _numbered("", 8)
    if leaf.endswith("reference"):  # more digits than a spreadsheet number keeps
        return _numbered("1", 17)
    if leaf in ("notes", "description", "comments"):  # quoted: a comma, quotes and a newline
        return _numbered('"Café n°', 8, suffix=', ""first"" line\nsecond line"')
    word = re.sub(r"[^A-Za-z0-9]", "", field.rpartition(".")[2])[:24] or "Value"
    return _numbered(word + " ", 10)


def _deleted_values(deleted: dict[str, Any], with_deleted_rows: bool) -> Column:
    """The deleted-flag column; full loads never hold deleted rows (Zuora's docs)."""
    yes, no = (
        ("1", "0") if str(deleted.get("format", "")).lower() == "numeric" else ("true", "false")
    )
    return _cycling([no] * 9 + [yes if with_deleted_rows else no])


def _armored(chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield _ARMOR_HEAD
    pending = b""
    for chunk in chunks:
        pending += chunk.translate(_SCRAMBLE)
        whole = len(pending) - len(pending) % _ARMOR_LINE
        if whole:
            yield base64.encodebytes(pending[:whole])
            pending = pending[whole:]
    if pending:
        yield base64.encodebytes(pending)
    yield _ARMOR_TAIL


def _armored_length(length: int) -> int:
    lines, rest = divmod(length, _ARMOR_LINE)
    last = 4 * -(-rest // 3) + 1 if rest else 0
    return len(_ARMOR_HEAD) + lines * 77 + last + len(_ARMOR_TAIL)


def gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    for chunk in chunks:
        if packed := compressor.compress(chunk):
            yield packed
    yield compressor.flush()


class _Sink:
    """A write-only stream for zipfile: without tell() and seek() it writes a streamable zip."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _zipped(chunks: Iterator[bytes], member: str, length: int | None) -> Iterator[bytes]:
    sink = _Sink()
    entry = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    big = length is None or length > ZIP64_LIMIT
    with (
        zipfile.ZipFile(sink, "w") as archive,  # type: ignore[arg-type]
        archive.open(entry, "w", force_zip64=big) as stream,
    ):
        for chunk in chunks:
            stream.write(chunk)
            if data := sink.take():
                yield data
    yield sink.take()
