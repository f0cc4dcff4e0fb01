"""Log helpers: Range parsing and opening logs to serve them (plain files, no reactor)."""

import errno
import os

import pytest

from scrapy_do.web.logs import open_log_for_reading, parse_open_range


@pytest.mark.parametrize("header, size, start", [
    ("bytes=10-", 100, 10), ("bytes=-30", 100, 70), ("bytes=-300", 100, 0), ("bytes=100-", 100, 100),
    ("bytes=0-10", 100, None), ("bytes=1-2,5-", 100, None), ("items=1-", 100, None)])
def test_open_ranges_give_a_start_offset(header, size, start):
    """`bytes=N-` and `bytes=-N` give where to start; closed or multiple ranges are left to static serving."""
    assert parse_open_range(header, size) == start


def test_range_past_the_end_is_unsatisfiable():
    """A start beyond the end of the log cannot be served."""
    with pytest.raises(ValueError):
        parse_open_range("bytes=101-", 100)


def test_a_log_is_read_only_through_no_symlink_and_only_if_regular(tmp_path):
    """Serving never follows a symlink in a log's place (to /etc/shadow, say) nor blocks on a FIFO."""
    real = tmp_path / "j.out"
    real.write_bytes(b"log\n")
    with open_log_for_reading(str(real)) as f:
        assert f.read() == b"log\n"
    (tmp_path / "link.out").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.out")
    for name in ("link.out", "fifo.out"):
        with pytest.raises(OSError) as raised:
            open_log_for_reading(str(tmp_path / name))
        assert raised.value.errno == errno.EACCES
