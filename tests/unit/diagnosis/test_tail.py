"""tail_lines: bounded backwards reads, \\r progress lines, ANSI codes, odd files."""

from __future__ import annotations

from pathlib import Path

from bot.diagnosis import tail_lines


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "output.log"
    path.write_bytes(data)
    return path


def test_last_n_lines_of_a_long_file(tmp_path):
    path = write(tmp_path, b"".join(b"line %d\n" % i for i in range(100_000)))
    assert tail_lines(path, n=3) == ["line 99997", "line 99998", "line 99999"]
    assert len(tail_lines(path)) == 200


def test_file_smaller_than_the_tail_and_no_trailing_newline(tmp_path):
    path = write(tmp_path, b"first\nsecond\nlast without newline")
    assert tail_lines(path, n=10) == ["first", "second", "last without newline"]


def test_empty_file_and_zero_lines(tmp_path):
    assert tail_lines(write(tmp_path, b""), n=5) == []
    assert tail_lines(write(tmp_path, b"a\nb\n"), n=0) == []


def test_carriage_return_progress_keeps_the_last_segment(tmp_path):
    path = write(tmp_path, b"  1%|  | 1/100\r 50%|## | 50/100\r100%|###| 100/100\nwindows line\r\n")
    assert tail_lines(path) == ["100%|###| 100/100", "windows line"]


def test_ansi_colours_are_stripped(tmp_path):
    path = write(tmp_path, b"\x1b[31mERROR\x1b[0m boom\x1b[K\n\x1b]0;title\x07done\n")
    assert tail_lines(path) == ["ERROR boom", "done"]


def test_one_enormous_line_is_bounded(tmp_path):
    path = write(tmp_path, b"x" * (5 << 20) + b"END\n")
    (line,) = tail_lines(path, n=5, max_bytes=64 << 10)
    assert len(line) <= 64 << 10 and line.endswith("xEND")


def test_blocks_cut_mid_line_drop_the_partial_first_line(tmp_path):
    path = write(tmp_path, b"A" * 100 + b"\nshort\n" + b"B" * 50 + b"\n")
    assert tail_lines(path, n=5, max_bytes=80) == ["short", "B" * 50]


def test_invalid_utf8_is_replaced(tmp_path):
    path = write(tmp_path, "héllo\n".encode() + b"bad \xff\xfe byte\n")
    assert tail_lines(path) == ["héllo", "bad \ufffd\ufffd byte"]
