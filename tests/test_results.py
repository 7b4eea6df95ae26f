"""Result files as bytes: decoding, joining, counting, previewing and Excel output."""

import csv
import gzip
import io
import zipfile
from datetime import date, datetime

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquadash import results


def fed(counter: results.RecordCounter, data: bytes, cuts: list[int]) -> int:
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        counter.feed(data[start:cut])
        start = cut
    return counter.records


def count(data: bytes, cuts: tuple[int, ...] = ()) -> int:
    return fed(results.RecordCounter(), data, list(cuts))


def reader_records(text: str) -> int:
    return max(0, len(list(csv.reader(io.StringIO(text, newline="")))) - 1)


CSV_TEXT = st.text(alphabet=["a", "é", ",", '"', "\n", "\r", "\x00", " "], max_size=40)


@given(text=CSV_TEXT, cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=4))
def test_records_are_counted_as_pythons_csv_reader_reads_them(text, cuts):
    data = text.encode()

    assert count(data, tuple(c for c in cuts if c <= len(data))) == reader_records(text)


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b'Id,Notes\n1,"two\nlines"\n2,plain\n', 2),  # a quoted newline is not a record
        (b"Id,Name\n1,a\x00b\n2,c\n", 2),  # an embedded NUL
        (b"Id,Name\n1,a\n2,b", 2),  # no final newline
        (b"Id,Name\r\n1,a\r\n2,b\r\n", 2),  # Windows line ends
        (b'Id,Quote\n1,"say ""hi""\n, twice"\n', 1),  # doubled quotes inside quotes
        (b'Id,Inch\n1,12"\n2,3"\n', 2),  # a quote inside an unquoted field is just a character
        (b"Id,Name\n", 0),
        (b"", 0),
    ],
)
def test_what_wc_l_gets_wrong_is_counted_right(data, records):
    assert count(data) == records
    assert count(data, tuple(range(len(data)))) == records  # fed one byte at a time


def test_gzip_and_zip_decode_to_the_csv_in_small_pieces():
    csv_bytes = b"Id,Name\n" + b"".join(b"%d,name %d\n" % (n, n) for n in range(50_000))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("result.csv", csv_bytes)

    for file_format, data in [("GZIP", gzip.compress(csv_bytes)), ("ZIP", archive.getvalue())]:
        pieces = list(results.decoded([data[i : i + 999] for i in range(0, len(data), 999)],
                                      file_format))  # fmt: skip
        assert b"".join(pieces) == csv_bytes
        assert max(map(len, pieces)) <= results.PIECE


def test_a_streamed_zip_without_sizes_in_its_header_decodes():
    # The way Zuora (and the simulator) writes a zip it streams: sizes in a trailing descriptor.
    archive = b"".join(results.zipped([("a.csv", [b"Id\n1\n2\n"])]))

    assert b"".join(results.decoded([archive], "ZIP")) == b"Id\n1\n2\n"


@pytest.mark.parametrize("file_format", ["GZIP", "ZIP"])
def test_a_compressed_file_cut_short_is_unreadable(file_format):
    data = b"Id\n" + b"x\n" * 100_000
    if file_format == "GZIP":
        packed = gzip.compress(data)
    else:
        packed = b"".join(results.zipped([("a.csv", [data])]))

    with pytest.raises(results.ResultUnreadable, match="ends before its end"):
        b"".join(results.decoded([packed[: len(packed) // 2]], file_format))


def test_a_gzip_bomb_is_decoded_in_small_pieces():
    bomb = gzip.compress(b"\0" * 50_000_000)

    pieces = results.decoder("GZIP").feed(bomb)

    assert max(len(piece) for piece in pieces) <= results.PIECE


def test_segments_join_with_one_header():
    parts = [[b"Id,Na", b"me\n1,a\n"], [b"Id,Name\n2,b"], [b"Id,Name\n"], [b"Id,Name\n3,c\n"]]

    assert b"".join(results.joined(parts)) == b"Id,Name\n1,a\n2,b\n3,c\n"


def test_segments_with_other_columns_are_refused():
    with pytest.raises(results.ResultUnreadable, match="part 2 has other columns"):
        b"".join(results.joined([[b"Id,Name\n1,a\n"], [b"Id,Email\n2,b\n"]]))


def test_preview_flags_ragged_rows_and_stops_reading():
    def chunks():
        yield b"Id,Name\n1,a\n2\n3,c,extra\n"
        for n in range(4, 1000):
            yield b"%d,x\n" % n
        raise AssertionError("read past what the preview needs")

    shown = results.preview(chunks(), limit=5)

    assert shown.header == ["Id", "Name"]
    assert shown.rows[:3] == [["1", "a"], ["2"], ["3", "c", "extra"]]
    assert shown.ragged == {1, 2}
    assert shown.more is True


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1250", 1250),
        ("-3.25", -3.25),
        ("007", "007"),  # leading zeros stay
        ("1234567890123456", "1234567890123456"),  # 16 digits: Excel would lose the last
        ("123456789012345", 123456789012345),
        ("1e5", "1e5"),
        ("2024-02-29", date(2024, 2, 29)),
        ("2024-02-30", "2024-02-30"),
        ("2024-11-29 18:37:30", datetime(2024, 11, 29, 18, 37, 30)),
        ("2024-11-29T18:37:30-0800", datetime(2024, 11, 29, 18, 37, 30)),
        ("1899-12-31", "1899-12-31"),
        ('=HYPERLINK("http://evil.test")', '=HYPERLINK("http://evil.test")'),
        ("", None),
    ],
)
def test_cells_become_what_excel_should_show(text, value):
    assert results.excel_value(text) == value


def test_xlsx_keeps_ids_as_text_and_types_the_rest():
    rows = [
        ["Account: Id", "AccountId", "Paid", "Number", "When", "Formula"],
        ["12345", "0042", "17", "0042", "2024-01-31", "=1+1"],
    ]
    output = io.BytesIO()

    written = results.write_xlsx(iter(rows), output, sheet="Accounts: all")

    sheet = openpyxl.load_workbook(output).active
    values = [cell.value for cell in sheet[2]]
    assert written == 1
    assert sheet.title == "Accounts- all"
    assert [cell.value for cell in sheet[1]] == rows[0]
    assert values == ["12345", "0042", 17, "0042", datetime(2024, 1, 31), "=1+1"]
    assert sheet["F2"].data_type == "s"  # text, not a formula


def test_xlsx_refuses_more_rows_than_a_worksheet_holds(monkeypatch):
    monkeypatch.setattr(results, "EXCEL_MAX_ROWS", 3)

    with pytest.raises(results.TooManyRows):
        results.write_xlsx(iter([["Id"], ["1"], ["2"], ["3"]]), io.BytesIO())


def test_zipped_members_open_with_the_standard_library():
    data = b"".join(results.zipped([("a.csv", [b"Id\n1\n"]), ("b.csv", iter([b"Id\n", b"2\n"]))]))

    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["a.csv", "b.csv"]
    assert archive.read("b.csv") == b"Id\n2\n"
    assert archive.testzip() is None


EXCEL_SHEET_FORBIDDEN = set("[]:*?/\\")


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(max_size=80)
    | st.builds(lambda n, s: "'" * n + s + "'" * n, st.integers(1, 3), st.text(max_size=40))
    | st.text(alphabet=["📈", "'", " ", "a", "é"], max_size=40)
)
def test_any_batch_name_gives_a_workbook_excel_opens(name):
    output = io.BytesIO()

    results.write_xlsx(iter([["Id"], ["1"]]), output, sheet=name)

    title = openpyxl.load_workbook(output).active.title
    assert len(title.encode("utf-16-le")) // 2 <= 31
    assert not EXCEL_SHEET_FORBIDDEN & set(title)
    assert not title.startswith("'") and not title.endswith("'")
    assert title.strip() and title.casefold() != "history"
    assert all(c.isprintable() for c in title)


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("'Q3 accounts'", "Q3 accounts"),
        ("📈" * 20, "📈" * 15),
        ("History", "History batch"),
        ("  ", "Results"),
    ],
)
def test_sheet_names_keep_what_excel_allows(name, title):
    assert results.sheet_name(name) == title


def excel_csv(data: bytes) -> bytes:
    return b"".join(results.for_excel([data]))


def test_csv_for_excel_makes_formulas_text():
    data = b'Id,Link,Cmd,At,Tab\n1,"=HYPERLINK(""http://evil.test"",""x"")",=cmd|x,@SUM(1),"\tx"\n'

    rows = records(excel_csv(data))

    assert rows[1] == ["1", '\'=HYPERLINK("http://evil.test","x")', "'=cmd|x", "'@SUM(1)", "'\tx"]


@pytest.mark.parametrize("number", ["-12.50", "-3", "0.5"])
def test_csv_for_excel_keeps_plain_numbers_numbers(number):
    assert records(excel_csv(f"Amount\n{number}\n".encode()))[1] == [number]


@pytest.mark.parametrize("text", ["+12", "-1+2", "-", "-1E5"])
def test_csv_for_excel_treats_signed_text_as_text(text):
    assert records(excel_csv(f"Amount\n{text}\n".encode()))[1] == ["'" + text]


def test_csv_for_excel_has_a_byte_order_mark_and_keeps_quoted_line_breaks():
    data = 'Id,Notes\n1,"Café, ""first""\nsecond"\n'.encode()

    assert excel_csv(data) == b"\xef\xbb\xbf" + data


def workbook(rows: list[list[str]]) -> openpyxl.worksheet.worksheet.Worksheet:
    output = io.BytesIO()
    results.write_xlsx(iter(rows), output)
    return openpyxl.load_workbook(output).active


def width(sheet: openpyxl.worksheet.worksheet.Worksheet, column: str) -> float:
    return sheet.column_dimensions[column].width


def test_xlsx_header_is_bold_frozen_and_filtered():
    sheet = workbook([["Id", "Name", "Balance"], ["1", "a", "2.50"], ["2", "b", "3.75"]])

    assert all(cell.font.b for cell in sheet[1])
    assert not any(cell.font.b for cell in sheet[2])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:C3"


def test_xlsx_columns_are_sized_to_their_content_and_capped():
    sheet = workbook([["Id", "Name", "Notes"], ["1", "Acme Corporation International", "x" * 500]])

    assert width(sheet, "A") < width(sheet, "B")
    assert width(sheet, "B") >= len("Acme Corporation International")
    assert width(sheet, "C") <= results.WIDEST + 1


def test_xlsx_header_and_its_filter_button_fit_their_column():
    header = "Account: Customer Service Rep Name"

    sheet = workbook([[header], ["Ann"]])

    assert width(sheet, "A") >= len(header) + results.FILTER_BUTTON


def test_xlsx_columns_are_sized_from_the_first_rows_only(monkeypatch):
    monkeypatch.setattr(results, "SIZING_ROWS", 2)
    rows = [["Name"], ["short"], ["short"], ["much longer than the first rows"]]

    sheet = workbook(rows)

    assert width(sheet, "A") < len(rows[3][0])
    assert sheet["A4"].value == rows[3][0]


def test_xlsx_numbers_keep_the_decimals_the_source_had():
    sheet = workbook([["Balance", "Rate", "Count"], ["1000.00", "0.125", "123456789012"]])

    assert [cell.value for cell in sheet[2]] == [1000, 0.125, 123456789012]
    assert [cell.number_format for cell in sheet[2]] == ["0.00", "0.000", "0"]


def test_xlsx_dates_and_times_show_whole_in_their_columns():
    sheet = workbook([["Day", "When"], ["2024-01-31", "2024-11-29 18:37:30"]])

    assert sheet["A2"].value == datetime(2024, 1, 31)
    assert sheet["A2"].number_format == "yyyy-mm-dd"
    assert width(sheet, "A") >= len("2024-01-31") + 1
    assert sheet["B2"].value == datetime(2024, 11, 29, 18, 37, 30)
    assert sheet["B2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert width(sheet, "B") >= len("2024-11-29 18:37:30") + 1


@pytest.mark.parametrize("text", ["2015-01-01T00:00:00+0000", "2015-01-01T00:00:00Z"])
def test_xlsx_shows_zuoras_utc_times_as_utc_wall_times_marked_utc(text):
    sheet = workbook([["UpdatedDate"], [text]])

    assert sheet["A2"].value == datetime(2015, 1, 1)
    assert sheet["A2"].number_format == 'yyyy-mm-dd hh:mm:ss "UTC"'
    assert width(sheet, "A") >= len("2015-01-01 00:00:00 UTC") + 1


def test_xlsx_shows_other_offsets_beside_the_wall_time_zuora_wrote():
    sheet = workbook([["UpdatedDate"], ["2024-11-29T18:37:30-0800"]])

    assert sheet["A2"].value == datetime(2024, 11, 29, 18, 37, 30)
    assert sheet["A2"].number_format == 'yyyy-mm-dd hh:mm:ss "-08:00"'


def test_xlsx_of_a_header_alone_is_filtered_and_frozen():
    sheet = workbook([["Id", "Name"]])

    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:B1"


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_xlsx_header_cells_stay_text_not_formulas():
    rows = [
        ['=HYPERLINK("http://evil.test","Id")', "+cmd|' /C calc'!A0", "@SUM(1)"],
        ["1", "2", "3"],
    ]
    output = io.BytesIO()

    results.write_xlsx(iter(rows), output)

    sheet = openpyxl.load_workbook(output).active
    assert [cell.value for cell in sheet[1]] == rows[0]
    assert [cell.data_type for cell in sheet[1]] == ["s", "s", "s"]


def test_preview_shortens_long_cells_to_their_limit():
    data = b"Id," + b"N" * 5000 + b"\n1," + b"x" * 5000 + b"\n"

    shown = results.preview([data])

    assert shown.header[1] == "N" * 299 + "…"
    assert shown.rows[0] == ["1", "x" * 299 + "…"]


def test_a_first_line_over_a_megabyte_is_refused_as_no_header():
    endless = (b"x" * 65536 for _ in range(17))  # 1.06 MB, no line break

    with pytest.raises(results.ResultUnreadable, match="first line is over 1,048,576 bytes long"):
        list(results.joined([endless]))


def test_a_header_just_under_a_megabyte_is_a_header():
    header = b"x" * (1024 * 1024 - 1) + b"\n"

    assert b"".join(results.joined([[header, b"1\n"]])) == header + b"1\n"
