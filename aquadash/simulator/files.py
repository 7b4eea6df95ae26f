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
        chunks, length = self._csv(), self._csv_length()
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

    def _columns(self) -> tuple[list[str], list[Callable[[int], str]]]:
        match = _SELECT.match(self.query)
        fields = [f.strip() for f in match["fields"].split(",")] if match else ["Id"]
        source = match["object"] if match else "Object"
        header = [_label(field, source, self.query_labels) for field in fields]
        values = [_values(field, self.seed) for field in fields]
        if self.deleted:
            header.append(str(self.deleted.get("column", "IsDeleted")))
            values.append(_deleted_values(self.deleted, self.with_deleted_rows))
        return header, values

    def _header(self) -> bytes:
        header, _ = self._columns()
        return (",".join(_quoted(name) for name in header) + "\n").encode()

    def _row(self, values: list[Callable[[int], str]], row: int) -> str:
        return ",".join([value(row) for value in values]) + "\n"

    def _csv(self) -> Iterator[bytes]:
        _, values = self._columns()
        yield self._header()
        for first in range(self.start, self.stop, CHUNK_ROWS):
            last = min(self.stop, first + CHUNK_ROWS)
            yield "".join([self._row(values, row) for row in range(first, last)]).encode()

    def _csv_length(self) -> int:
        # Every value has a fixed width except true/false flags, which are "true" only on rows
        # ending in 9: so rows come in two lengths and the total needs no rows made.
        _, values = self._columns()
        plain, nines = len(self._row(values, 0)), len(self._row(values, 9))
        nine_rows = self.stop // 10 - self.start // 10
        return len(self._header()) + (self.stop - self.start) * plain + nine_rows * (nines - plain)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if re.search(r'[",\r\n]', name) else name


def _label(field: str, source: str, query_labels: bool) -> str:
    """Header cell: `Account.Name` with useQueryLabels, else a label like `Account: Name`."""
    owner, _, name = field.rpartition(".")
    owner = owner or source
    if query_labels:
        return f"{owner}.{name}"
    return f"{re.sub(r'(?<=[a-z])(?=[A-Z])', ' ', owner)}: {name}"


def _values(field: str, seed: str) -> Callable[[int], str]:
    """Deterministic values for a column, guessed from its name; each has a fixed width."""
    leaf = field.rpartition(".")[2].strip().lower()
    if leaf.endswith("id"):
        prefix = derived_id(seed, field)[:12]
        return lambda i: f"{prefix}{i:020x}"
    if "date" in leaf or "time" in leaf:
        with_time = "time" in leaf or leaf in ("createddate", "updateddate")
        if with_time:
            return lambda i: f"20{15 + i % 10}-{i % 12 + 1:02d}-{i % 28 + 1:02d} {i % 24:02d}:00:00"
        return lambda i: f"20{15 + i % 10}-{i % 12 + 1:02d}-{i % 28 + 1:02d}"
    if any(word in leaf for word in ("amount", "balance", "price", "total", "quantity", "tax")):
        return lambda i: f"{(i * 37) % 90000 + 10000}.{i % 100:02d}"
    if leaf.endswith("year"):
        return lambda i: str(2015 + i % 10)
    if leaf.endswith("status"):
        return lambda i: ("Active", "Closed")[i % 2]
    if leaf.startswith("is"):
        return lambda i: "true" if i % 10 == 9 else "false"
    word = re.sub(r"[^A-Za-z0-9]", "", field.rpartition(".")[2])[:24] or "Value"
    return lambda i: f"{word} {i:010d}"


def _deleted_values(deleted: dict[str, Any], with_deleted_rows: bool) -> Callable[[int], str]:
    """The deleted-flag column; full loads never hold deleted rows (Zuora's docs)."""
    yes, no = (
        ("1", "0") if str(deleted.get("format", "")).lower() == "numeric" else ("true", "false")
    )
    if not with_deleted_rows:
        return lambda i: no
    return lambda i: yes if i % 10 == 9 else no


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
