"""Crawl logs written by the daemon: exact cap with a marker, owner-only modes, no symlinks followed."""

import os
import stat

import pytest

from scrapy_do.launchers.logfiles import LogFile, LogHub, marker


def test_cap_keeps_exactly_the_head_and_one_marker(tmp_path):
    """Past the limit a log holds its first `limit` bytes, one marker line, and nothing written later."""
    log = LogFile(tmp_path / "j.out", limit=100)
    for _ in range(50):
        log.write(b"0123456789")
    log.close()
    data = (tmp_path / "j.out").read_bytes()
    assert data == b"0123456789" * 10 + marker(100)


def test_no_limit_keeps_everything(tmp_path):
    """With limit 0 every byte is kept."""
    log = LogFile(tmp_path / "j.out")
    log.write(b"x" * 100_000)
    log.close()
    assert (tmp_path / "j.out").stat().st_size == 100_000


def test_logs_are_0640_even_if_the_file_existed_wider(tmp_path):
    """A new log is created 0640, and an existing world-readable one is narrowed."""
    wide = tmp_path / "old.out"
    wide.write_bytes(b"")
    wide.chmod(0o666)
    for path in (tmp_path / "new.out", wide):
        LogFile(path).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("make", ["symlink", "fifo", "directory"])
def test_a_log_that_is_not_a_regular_file_is_refused(tmp_path, make):
    """A symlink (to /etc/shadow, say), a FIFO or a directory in a log's place is never opened for writing."""
    target = tmp_path / "secret"
    target.write_bytes(b"keep me")
    path = tmp_path / "j.out"
    if make == "symlink":
        path.symlink_to(target)
    elif make == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(OSError):
        LogFile(path)
    assert target.read_bytes() == b"keep me"


def test_followers_hear_of_each_write_and_of_the_close(tmp_path):
    """The hub calls a follower back after every write and when the log closes; unwatch stops it."""
    hub = LogHub()
    heard = []
    path = tmp_path / "j.out"
    unwatch = hub.watch(path, lambda: heard.append(path.read_bytes()))
    log = LogFile(path, hub=hub)
    log.write(b"a")
    log.write(b"b")
    unwatch()
    log.write(b"c")
    log.close()
    assert heard == [b"a", b"ab"]


def test_a_failing_write_drops_output_without_raising(tmp_path, monkeypatch):
    """A full disk (ENOSPC) loses that output but never the crawl or the daemon."""
    log = LogFile(tmp_path / "j.out")
    real_write = os.write

    def full(fd, data):
        if fd == log.fd:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    log.write(b"lost")
    monkeypatch.setattr(os, "write", real_write)
    log.write(b"kept")
    log.close()
    assert (tmp_path / "j.out").read_bytes() == b"kept"
