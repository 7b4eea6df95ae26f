"""AQuA result files as they stream: decompressed, joined, counted, previewed and made ready for
Excel, never holding more than a chunk or a row of a file in memory.

Nothing here knows about Zuora or Django: bytes in, bytes or rows out, and `ResultUnreadable`
when a file is not what its format says.
"""

import copy
import csv
import io
import itertools
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import BinaryIO, Protocol

import xlsxwriter

PIECE = 64 * 1024  # the most a decompressor hands on at once, so a zip bomb costs no memory
EXCEL_MAX_ROWS = 1_048_576  # rows in one Excel worksheet, the header included
EXCEL_MAX_COLUMNS = 16_384
UTF8_BOM = b"\xef\xbb\xbf"
# What aquadash reads of one row, to show it, convert it or check its header: a row is held
# whole while it is read, so a file of one endless row would otherwise cost endless memory.
ROW_LIMIT = 1024 * 1024  # characters in a row, its quoted line breaks included
CELL_LIMIT = 128 * 1024  # characters in a cell (Python's csv default, made explicit here)
csv.field_size_limit(CELL_LIMIT)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet cell a formula


class ResultUnreadable(ValueError):
    """A result file that is not what its format says; `str()` says why, for people."""


class TooWide(ResultUnreadable):
    """A row or a cell longer than aquadash reads; the rest of the file is left unread."""

    http_status = 409  # the file is whole, only beyond what aquadash reads: as NotDownloadable


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def finish(self) -> None: ...


class _Plain:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finish(self) -> None:
        pass


class _Gunzip:
    """gzip, including files of several gzip members one after another."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._started = True
            try:
                piece = self._inflater.decompress(data, PIECE)
            except zlib.error:
                raise ResultUnreadable("the gzip file is damaged") from None
            if piece:
                yield piece
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and (data := self._inflater.unused_data):
                self._inflater = zlib.decompressobj(wbits=31)

    def finish(self) -> None:
        if self._started and not self._inflater.eof:
            raise ResultUnreadable("the gzip file ends before its end")


class _Unzip:
    """The first file inside a zip, read front to back without the central directory, which a
    stream reaches only at its end. Zuora's zip results hold one CSV."""

    _HEADER = struct.Struct("<IHHHIIIIHH")  # a local file header, after which the data follows

    def __init__(self) -> None:
        self._pending = bytearray()
        self._inflater: zlib._Decompress | None = None
        self._stored_left: int | None = None
        self._done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return
        if self._inflater is None and self._stored_left is None:
            self._pending += data
            data = self._start()
            if data is None:
                return
        if self._stored_left is not None:
            piece, self._stored_left = data[: self._stored_left], self._stored_left - len(data)
            self._done = self._stored_left <= 0
            if piece:
                yield piece
            return
        assert self._inflater is not None
        while data and not self._done:
            try:
                piece = self._inflater.decompress(data, PIECE)
            except zlib.error:
                raise ResultUnreadable("the zip file is damaged") from None
            if piece:
                yield piece
            data = self._inflater.unconsumed_tail
            self._done = self._inflater.eof

    def _start(self) -> bytes | None:
        """Read the local header once it has arrived; returns the bytes after it, or None."""
        size = self._HEADER.size
        if len(self._pending) < size:
            return None
        signature, _, flags, method, _, _, compressed, _, name_length, extra_length = (
            self._HEADER.unpack_from(self._pending)
        )
        if signature != 0x04034B50:
            raise ResultUnreadable("the zip file does not start like one")
        if flags & 1:
            raise ResultUnreadable("the zip file is password-protected")
        start = size + name_length + extra_length
        if len(self._pending) < start:
            return None
        if method == zipfile.ZIP_DEFLATED:
            self._inflater = zlib.decompressobj(wbits=-15)
        elif method == zipfile.ZIP_STORED and not flags & 8 and compressed != 0xFFFFFFFF:
            self._stored_left = compressed
        else:
            raise ResultUnreadable("the zip file is packed in a way aquadash cannot stream")
        data = bytes(self._pending[start:])
        self._pending.clear()
        return data

    def finish(self) -> None:
        if not self._done:
            raise ResultUnreadable("the zip file ends before its end")


def decoder(file_format: str) -> Decoder:
    """Turns a result file of the job's `format` (CSV, GZIP or ZIP) back into its CSV."""
    return {"GZIP": _Gunzip, "ZIP": _Unzip}.get(file_format.upper(), _Plain)()


def decoded(chunks: Iterable[bytes], file_format: str) -> Iterator[bytes]:
    csv_decoder = decoder(file_format)
    for chunk in chunks:
        yield from csv_decoder.feed(chunk)
    csv_decoder.finish()


class RecordCounter:
    """Counts the records of a CSV fed in chunks, as a CSV reader would read them.

    A record ends at a line break (\\n, \\r\\n or \\r) outside quotes; a quote opens a quoted
    field only at the start of a field, and "" inside one is a quote. Blank lines are records,
    as Python's csv reader returns them; a last record without a final line break counts too.
    Plain stretches are counted with bytes.count, so the check costs little next to the download.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._quoted = False
        self._quote_pending = False  # a quote ended a chunk inside a quoted field
        self._previous = b"\n"[0]  # the byte before the next one: the file starts a field
        self._row_open = False

    @property
    def records(self) -> int:
        """Data records so far: every row but the header."""
        return max(0, self.rows + self._row_open - 1)

    def feed(self, data: bytes) -> None:
        position, end = 0, len(data)
        if self._quote_pending and end:
            self._quote_pending = False
            if data[0] == 0x22:  # "" inside a quoted field
                position = 1
            else:
                self._quoted, self._previous = False, 0x22
        while position < end:
            quote = data.find(b'"', position)
            if self._quoted:
                self._row_open = True
                if quote < 0:
                    break
                if quote + 1 == end:
                    self._quote_pending = True
                    break
                if data[quote + 1] == 0x22:
                    position = quote + 2
                else:
                    self._quoted, self._previous, position = False, 0x22, quote + 1
                continue
            stop = end if quote < 0 else quote
            self._count_line_breaks(data, position, stop)
            if quote < 0:
                break
            self._quoted = self._previous in b",\r\n"
            self._row_open, self._previous, position = True, 0x22, quote + 1

    def _count_line_breaks(self, data: bytes, start: int, stop: int) -> None:
        if start == stop:
            return
        breaks = data.count(b"\n", start, stop)
        if data.find(b"\r", start, stop) >= 0:  # find is memchr, far cheaper than count
            breaks += data.count(b"\r", start, stop) - data.count(b"\r\n", start, stop)
        if self._previous == 0x0D and data[start] == 0x0A:  # \r\n split between two chunks
            breaks -= 1
        self.rows += breaks
        self._previous = data[stop - 1]
        self._row_open = self._previous not in b"\r\n"


LINE_BREAK = re.compile(rb"\r\n?|\n")


def first_records(chunks: Iterable[bytes], records: int) -> Iterator[bytes]:
    """The header and the first `records` records of a CSV, byte for byte, ending where the
    last of them ends; reads no further, and closes `chunks` once they are out."""
    chunks = iter(chunks)
    counter, wanted = RecordCounter(), records + 1  # rows: the header and the records
    try:
        for chunk in chunks:
            trial = copy.copy(counter)
            trial.feed(chunk)
            if trial.rows < wanted:
                counter = trial
                yield chunk
                continue
            # The last record ends in this chunk: find the line break that ends it.
            start = 0
            for line_break in LINE_BREAK.finditer(chunk):
                counter.feed(chunk[start : line_break.end()])
                start = line_break.end()
                if counter.rows >= wanted:
                    break
            yield chunk[:start]
            return
    finally:
        if close := getattr(chunks, "close", None):
            close()  # Zuora's streams, and no further segment opened


def joined(parts: Iterable[Iterable[bytes]]) -> Iterator[bytes]:
    """Several CSV files with the same header (a batch's segments) as one CSV with one header."""
    header = b""
    for number, part in enumerate(parts, start=1):
        chunks = iter(part)
        first_line, rest = _first_line(chunks)
        if not first_line:
            continue  # an empty file: not even a header
        if not header:
            header = first_line
            yield header
        elif first_line != header:
            raise ResultUnreadable(f"part {number} has other columns than part 1")
        last = b"\n"
        for chunk in itertools.chain([rest], chunks):
            if chunk:
                yield chunk
                last = chunk
        if not last.endswith(b"\n"):  # the next part starts on a line of its own
            yield b"\n"


def _first_line(chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """The header line of a CSV, and what came after it in the same chunk."""
    line = bytearray()
    for chunk in chunks:
        cut = chunk.find(b"\n")
        if cut >= 0:
            line += chunk[: cut + 1]
            return bytes(line), chunk[cut + 1 :]
        line += chunk
        if len(line) > ROW_LIMIT:
            raise TooWide(
                f"its first line is over {ROW_LIMIT:,} bytes long, more than aquadash reads as "
                "a header"
            )
    return (bytes(line) + b"\n" if line else b""), b""


class _Reader(io.RawIOBase):
    """A file-like view of byte chunks, for the csv module."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size


class _Lines:
    """The lines of a CSV for csv.reader, refusing a row longer than ROW_LIMIT before it is
    read whole: a line is read at most up to what is left of the row's allowance, and a row
    that quoted line breaks spread over several lines spends one allowance."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.row = 1  # the row being read: the header is row 1
        self.row_size = 0  # characters of it read so far

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self._text.readline(ROW_LIMIT - self.row_size + 1)
        if not line:
            raise StopIteration
        self.row_size += len(line)
        if self.row_size > ROW_LIMIT:
            raise TooWide(
                f"row {self.row:,} is over {ROW_LIMIT:,} characters long, more than aquadash "
                "reads in one row"
            )
        return line

    def next_row(self) -> None:
        self.row += 1
        self.row_size = 0


def csv_rows(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """The rows of a UTF-8 CSV (with or without a byte-order mark), as Python's csv reads it,
    each at most ROW_LIMIT characters and each cell at most CELL_LIMIT (else TooWide)."""
    text = io.TextIOWrapper(
        io.BufferedReader(_Reader(chunks), PIECE),
        encoding="utf-8-sig",
        errors="replace",
        newline="",
    )
    lines = _Lines(text)
    try:
        for row in csv.reader(lines):
            lines.next_row()
            yield row
    except csv.Error as exc:
        if str(exc).startswith("field larger than field limit"):
            raise TooWide(
                f"row {lines.row:,} has a cell over {CELL_LIMIT:,} characters long, more than "
                "aquadash reads in one cell"
            ) from None
        raise ResultUnreadable(f"the CSV cannot be read ({exc})") from None


def for_excel(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """CSV that Excel opens with its accents intact (a byte-order mark) and takes at its word:
    each row rewritten with every cell inert (see `inert_cell`), in pieces of about PIECE."""
    yield UTF8_BOM
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in csv_rows(chunks):
        writer.writerow([inert_cell(cell) for cell in row])
        if buffer.tell() >= PIECE:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def inert_cell(text: str) -> str:
    """A cell that no spreadsheet reads as a formula: one starting with =, +, -, @, a tab or a
    carriage return gets a leading apostrophe, which Excel and LibreOffice show as text. A plain
    number such as -12.50 is no formula and stays a number."""
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


@dataclass(frozen=True)
class Preview:
    header: list[str]
    rows: list[list[str]]
    more: bool  # the file has rows beyond these
    ragged: frozenset[int] = field(default_factory=frozenset)  # indexes of rows of wrong width
    hidden_columns: int = 0  # columns of the header beyond those shown

    @property
    def numeric(self) -> list[bool]:
        """Each column's: whether every cell shown in it that is not empty is a number (and
        one is), so that the page aligns its digits on the right."""
        columns = []
        for column in range(len(self.header)):
            cells = [row[column] for row in self.rows if len(row) > column and row[column]]
            columns.append(bool(cells) and all(NUMBER.fullmatch(cell) for cell in cells))
        return columns

    @property
    def marked_header(self) -> list[tuple[str, bool]]:
        return list(zip(self.header, self.numeric, strict=True))

    @property
    def marked_rows(self) -> list[list[tuple[str, bool]]]:
        """The rows, each cell with whether its column is numeric."""
        numeric = self.numeric
        return [
            [(cell, column < len(numeric) and numeric[column]) for column, cell in enumerate(row)]
            for row in self.rows
        ]


def preview(
    chunks: Iterable[bytes], *, limit: int = 100, cell_limit: int = 300, column_limit: int = 100
) -> Preview:
    """The header and first `limit` rows, their first `column_limit` cells each shortened to
    `cell_limit` characters, so that the page has a size whatever the file; reads no further
    than that (plus one row)."""
    rows = csv_rows(chunks)
    header = next(rows, [])
    shown: list[list[str]] = []
    ragged, more = set(), False
    for row in rows:
        if len(shown) == limit:
            more = True
            break
        if len(row) != len(header):
            ragged.add(len(shown))
        shown.append([_shortened(cell, cell_limit) for cell in row[:column_limit]])
    return Preview(
        header=[_shortened(cell, cell_limit) for cell in header[:column_limit]],
        rows=shown,
        more=more,
        ragged=frozenset(ragged),
        hidden_columns=max(0, len(header) - column_limit),
    )


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Excel ----------------------------------------------------------------------------------

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?"
)
ID_HEADER = re.compile(r"(?:\b|(?<=[a-z]))(?:Id|ID)$")
EXCEL_DIGITS = 15  # Excel keeps 15 significant digits of a number; more become zeros
# Columns are sized from the header and the first rows, which are all a constant-memory
# workbook can see before it must write them: at most this many rows or characters of them.
SIZING_ROWS = 200
SIZING_CHARACTERS = 1024 * 1024
NARROWEST, WIDEST = 10, 60  # column widths, in characters; 10 fits numbers a bit wider than seen
FILTER_BUTTON = 3  # characters the header's autofilter button covers


class TooManyRows(ResultUnreadable):
    pass


def excel_value(text: str, *, is_id: bool = False) -> str | int | float | date | datetime | None:
    """What a CSV cell becomes in a worksheet: IDs and anything a number would change stay text,
    clean numbers are numbers, Zuora's dates and timestamps are dates."""
    if text == "":
        return None
    if is_id:
        return text
    if NUMBER.fullmatch(text):
        if sum(c.isdigit() for c in text) > EXCEL_DIGITS:
            return text
        return float(text) if "." in text else int(text)
    try:
        if match := TIMESTAMP.fullmatch(text):
            moment = datetime(*map(int, match.groups()[:6]))  # wall time, as the CSV shows it
            return moment if moment.year >= 1900 else text
        if match := DATE.fullmatch(text):
            day = date(*map(int, match.groups()))
            return day if day.year >= 1900 else text
    except ValueError:  # 2024-02-30 and the like
        return text
    return text


def number_format(text: str, value: object) -> str | None:
    """How Excel should show a cell's value so that it reads as the CSV did: a number with the
    decimals it had (1000.00, not 1000), a date as yyyy-mm-dd, a timestamp as its wall time with
    the zone Zuora wrote after it ("UTC" for +0000 or Z, else the offset). None for text."""
    if isinstance(value, int):
        return "0"  # not General, which shows 12 digits or more as 1.23457E+11
    if isinstance(value, float):
        return "0." + "0" * len(text.partition(".")[2])
    if isinstance(value, datetime):
        match = TIMESTAMP.fullmatch(text)
        zone = match["zone"] if match else None
        if zone is None:
            return "yyyy-mm-dd hh:mm:ss"
        if zone in ("Z", "+0000", "+00:00", "-0000", "-00:00"):
            return 'yyyy-mm-dd hh:mm:ss "UTC"'
        return f'yyyy-mm-dd hh:mm:ss "{zone[:3]}:{zone[-2:]}"'
    if isinstance(value, date):
        return "yyyy-mm-dd"
    return None  # text


Cell = tuple[str, str | int | float | date | datetime | None, str | None]


def _cells(rows: Iterable[list[str]], ids: list[bool]) -> Iterator[list[Cell]]:
    """Each row's cells as (text, value, number format)."""
    for row in rows:
        cells = []
        for column, text in enumerate(row):
            value = excel_value(text, is_id=column < len(ids) and ids[column])
            cells.append((text, value, number_format(text, value)))
        yield cells


def _first_rows(rows: Iterator[list[str]]) -> list[list[str]]:
    """The rows that size the columns: SIZING_ROWS, or fewer when they are long."""
    taken, characters = [], 0
    for row in rows:
        taken.append(row)
        characters += sum(map(len, row))
        if len(taken) == SIZING_ROWS or characters >= SIZING_CHARACTERS:
            break
    return taken


def _shown_width(text: str, value: object, num_format: str | None) -> int:
    """About how many characters wide Excel shows a cell: its text, or a date's format."""
    if isinstance(value, date) and num_format:
        return len(num_format.replace('"', ""))
    return len(text)


def sheet_name(name: str) -> str:
    """A worksheet name Excel accepts, from a batch's: at most 31 UTF-16 code units (as Excel
    counts, so an emoji is two), none of []:*?/\\ or unprintable characters, no apostrophe at
    either end, not blank and not "History", which Excel keeps for itself."""
    name = "".join(c if c.isprintable() else " " for c in name)
    name = re.sub(r"[\[\]:*?/\\]", "-", name).strip(" '")
    kept, units = [], 0
    for character in name:
        units += 2 if ord(character) > 0xFFFF else 1
        if units > 31:
            break
        kept.append(character)
    name = "".join(kept).strip(" '")
    if name.casefold() == "history":
        return "History batch"
    return name or "Results"


def write_xlsx(rows: Iterable[list[str]], output: BinaryIO, *, sheet: str = "Results") -> int:
    """Write CSV rows (the first is the header) to an .xlsx file in XlsxWriter's constant-memory
    mode; returns the number of data rows. Raises TooManyRows past Excel's limit.

    The header is bold, frozen and filtered; columns are sized from the first rows, which are
    held until the widths are set, because constant-memory mode writes each row as it comes."""
    workbook = xlsxwriter.Workbook(
        output,
        {
            "constant_memory": True,  # each row goes to a temporary file as it is written
            "strings_to_numbers": False,
            "strings_to_formulas": False,  # a cell "=HYPERLINK(...)" from Zuora stays text
            "strings_to_urls": False,
        },
    )
    worksheet = workbook.add_worksheet(sheet_name(sheet))
    formats: dict[str, xlsxwriter.format.Format] = {}
    rows = iter(rows)
    header = next(rows, None)
    if header is None:
        workbook.close()
        return 0
    header = header[:EXCEL_MAX_COLUMNS]
    ids = [bool(ID_HEADER.search(name.strip())) for name in header]
    first_rows = list(_cells(_first_rows(rows), ids))
    widths = [len(name) + FILTER_BUTTON for name in header]
    for row in first_rows:
        for column, (text, value, num_format) in enumerate(row[: len(widths)]):
            widths[column] = max(widths[column], _shown_width(text, value, num_format))
    for column, width in enumerate(widths):
        worksheet.set_column(column, column, min(WIDEST, max(NARROWEST, width + 1)))
    worksheet.freeze_panes(1, 0)
    worksheet.write_row(0, 0, header, workbook.add_format({"bold": True}))
    count = 0
    for count, row in enumerate(itertools.chain(first_rows, _cells(rows, ids)), start=1):
        if count >= EXCEL_MAX_ROWS:
            workbook.close()
            raise TooManyRows(
                f"the result has more than {EXCEL_MAX_ROWS - 1:,} records, more than one Excel "
                "worksheet holds"
            )
        for column, (_, value, num_format) in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                worksheet.write_string(count, column, value)
                continue
            if num_format not in formats:
                formats[num_format] = workbook.add_format({"num_format": num_format})
            if isinstance(value, date):
                worksheet.write_datetime(count, column, value, formats[num_format])
            else:
                worksheet.write_number(count, column, value, formats[num_format])
    worksheet.autofilter(0, 0, count, max(0, len(header) - 1))
    workbook.close()
    return count


# --- Zip of several files -------------------------------------------------------------------


class _Sink:
    """A write-only stream for zipfile: without tell() and seek() it writes a streamable zip."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def zipped(members: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """A zip of (name, chunks) members, built with the standard library as it streams."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, chunks in members:
            entry = zipfile.ZipInfo(name, date_time=datetime.now().timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            # Sizes are unknown until the end and may pass 4 GB: Zip64 from the start.
            with archive.open(entry, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
                    if data := sink.take():
                        yield data
    yield sink.take()  # the rest of the last member and the central directory
