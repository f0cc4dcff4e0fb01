"""Log helpers: Range parsing and the log size cap (plain files, no reactor)."""

import pytest

from scrapy_do.web.logs import LogCap, parse_open_range


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


class NoWatcher:
    def watch(self, path, callback):
        return lambda: None


def test_cap_keeps_head_and_marker_and_stays_put(tmp_path):
    """A log over the cap keeps its first bytes plus one marker, however often more is appended."""
    log = tmp_path / "j.err"
    cap = LogCap(NoWatcher(), 100)
    log.write_bytes(b"a" * 250)
    cap.enforce(str(log))
    expected = b"a" * 100 + cap.marker()
    assert log.read_bytes() == expected
    with open(log, "ab") as f:
        f.write(b"more output\n")
    cap.enforce(str(log))
    cap.enforce(str(log))
    assert log.read_bytes() == expected


def test_cap_leaves_small_logs_alone(tmp_path):
    """Logs under the cap are not touched."""
    log = tmp_path / "j.out"
    log.write_bytes(b"x" * 100)
    LogCap(NoWatcher(), 100).enforce(str(log))
    assert log.read_bytes() == b"x" * 100
