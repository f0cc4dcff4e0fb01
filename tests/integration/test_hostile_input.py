"""Hostile requests against one real `scrapy-do` process: every one is refused cleanly and leaves no trace.

One table, one line per case: (name, method, path, body, expected status, substring of the JSON "msg"
[, extra request headers][, "bug: ..." to mark it xfail]). `path` may be a callable of the daemon (for a
finished job's log); `body` is None, a callable returning (bytes, content type) or a dict of multipart
fields (values may be callables, built lazily so the module imports fast); a body marked `needs_daemon`
(with_job, needing) is first given the daemon, to name a job its fixture made (a schedule, a paused
schedule, a finished run). After every case the test checks the answer is exactly JSON
{"status": "error", "msg": ...}, that no file appeared or vanished in the daemon's working directory
(database and logs aside), that no job was added, removed or changed in the store (list-jobs.json; a run
moving on by itself aside), that nothing named after a hostile entry appeared in /tmp, and that
status.json still answers.
"""

import base64
import functools
import http.client
import io
import json
import os
import stat
import struct
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from scrapy_do.web.tokens import new_token, token_hash
from tests.helpers import multipart, offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

#: Every hostile file name carries this, so a stray write can be found in /tmp.
TOKEN = f"scrapydo-evil-{uuid.uuid4().hex[:10]}"
CONF = ("[scrapy-do]\njob-slots = 1\ncancel-grace = 5\nmax-archive-size = 8M\nmax-unpacked-size = 20M\n"
        "spider-list-timeout = 30\n[web]\ninterfaces = 127.0.0.1:0\n")
MAX_ARCHIVE = 8 << 20
MAX_UNPACKED = 20 << 20
UNKNOWN_JOB = "5b30c8a2-42e5-4ad5-b143-4cb0420955a5"

# --------------------------------------------------------------------------- hostile archives


def cfg(project):
    return f"[settings]\ndefault = {project}.settings\n\n[deploy]\nproject = {project}\n".encode()


def make_zip(entries):
    """Zip [(name, bytes, external_attr or None)] with names kept verbatim."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # duplicate names are deliberate
        for name, data, attr in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = attr if attr is not None else (
                (0o40755 << 16 | 0x10) if name.endswith("/") else (0o100644 << 16))
            zf.writestr(info, data)
    return buf.getvalue()


def project_files(name="evil", cfg_name=None):
    """A minimal valid-looking Scrapy project `name` (its scrapy.cfg may name `cfg_name`)."""
    return [(f"{name}/scrapy.cfg", cfg(cfg_name or name), None),
            (f"{name}/{name}/__init__.py", b"", None),
            (f"{name}/{name}/settings.py", f"SPIDER_MODULES = ['{name}.spiders']\n".encode(), None),
            (f"{name}/{name}/spiders/__init__.py", b"", None)]


def with_entry(name, data=b"print('pwned')\n", attr=None):
    return make_zip(project_files() + [(name, data, attr)])


def raw_zip(entries):
    """A zip written by hand from [(name, deflated bytes, crc, compressed size, declared size)]."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, crc, csize, size in entries:
        name = name.encode()
        offset = out.tell()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0x5C21, crc, csize, size, len(name), 0))
        out.write(name + data)
        central.write(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x5C21, crc, csize, size,
                                  len(name), 0, 0, 0, 0, 0o100644 << 16, offset))
        central.write(name)
    start, cd = out.tell(), central.getvalue()
    count = len(entries)
    out.write(cd + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(cd), start, 0))
    return out.getvalue()


def deflated_zeros(megabytes):
    """(raw deflate stream, crc) of `megabytes` MiB of zeros, built from one flushed 1 MiB block."""
    zeros = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(zeros, crc)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return block * megabytes + tail, crc


def _with_bomb(bomb_name, data, crc, size, declared):
    """The project files plus one hand-made member (sizes as given), as a zip."""
    good = zipfile.ZipFile(io.BytesIO(make_zip(project_files())))
    entries = []
    for info in good.infolist():
        raw = good.read(info)
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = comp.compress(raw) + comp.flush()
        entries.append((info.filename, packed, zlib.crc32(raw), len(packed), len(raw)))
    entries.append((bomb_name, data, crc, len(data), declared))
    return raw_zip(entries)


@functools.cache
def zip_bomb():
    """About 2 MiB that inflate to 2 GiB, with honest sizes in the headers."""
    data, crc = deflated_zeros(2048)
    return _with_bomb("evil/bomb.bin", data, crc, 2048 << 20, 2048 << 20)


@functools.cache
def lying_zip_bomb():
    """About 60 KiB that inflate to 64 MiB, each header claiming 1 KiB."""
    data, crc = deflated_zeros(64)
    return _with_bomb("evil/bomb.bin", data, crc, 64 << 20, 1024)


@functools.cache
def too_many_entries():
    return make_zip(project_files() + [(f"evil/f{i}.txt", b"", None) for i in range(10001)])


@functools.cache
def broken_imports():
    files = project_files()
    files[-1] = ("evil/evil/spiders/__init__.py", f"import {TOKEN.replace('-', '_')}_missing\n".encode(), None)
    return make_zip(files)


@functools.cache
def with_requirements(text):
    """A valid project with this requirements.txt next to its scrapy.cfg."""
    return make_zip(project_files() + [("evil/requirements.txt", text, None)])


@functools.cache
def newer_version_zip():
    """A valid project whose central directory says entries need zip 6.4 to extract."""
    data = bytearray(make_zip(project_files()))
    pos = zipfile.ZipFile(io.BytesIO(bytes(data))).start_dir
    while data[pos:pos + 4] == b"PK\x01\x02":
        data[pos + 6] = 64
        nlen, xlen, clen = struct.unpack("<3H", data[pos + 28:pos + 34])
        pos += 46 + nlen + xlen + clen
    return bytes(data)


@functools.cache
def local_name_not_utf8():
    """A valid project whose member has, in its local header only, the UTF-8 flag and a 0x80 byte in its name."""
    data = bytearray(make_zip(project_files() + [("evil/aa.py", b"x = 1\n", None)]))
    offset = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("evil/aa.py").header_offset
    data[offset + 30:offset + 40] = b"evil/\x80a.py"
    data[offset + 6:offset + 8] = (0x800).to_bytes(2, "little")
    return bytes(data)


@functools.cache
def oversized_archive(size):
    return os.urandom(size)


# --------------------------------------------------------------------------- request bodies


def form(**fields):
    """Multipart fields; a value may be a callable returning the field (str or (filename, bytes))."""
    def build():
        return multipart({k: (v() if callable(v) else v) for k, v in fields.items()})
    return build


def archive(build):
    return form(archive=lambda: (f"{TOKEN}.zip", build()))


def urlencoded(text):
    return lambda: (text.encode("latin-1"), "application/x-www-form-urlencoded")


def raw_bytes(data, ctype):
    return lambda: (data, ctype)


def with_job(which, **fields):
    """Multipart fields plus job_id = `which(daemon)` (a job the fixture made), built once the daemon is up."""
    def build(daemon):
        return form(job_id=which(daemon), **fields)
    build.needs_daemon = True
    return build


def needing(setup, body):
    """`body`, sent once `setup(daemon)` has run (e.g. made the schedule the request is about)."""
    def build(daemon):
        setup(daemon)
        return body
    build.needs_daemon = True
    return build


def schedule_form(**fields):
    """A schedule-job.json request for the offline project's `quick` spider, plus `fields`."""
    return form(project="offline", spider="quick", **fields)


def periodic(**fields):
    """schedule_form for a schedule: if a hostile field were taken, a job would be stored (and seen)."""
    return schedule_form(when="every 2 hours", **fields)


BIG = "x" * ((64 << 10) + 1)
#: More digits than Python's int-from-string limit (4300).
HUGE = "9" * 5000
SLIP = "../" * 24

# (name, method, path, body, expected status, substring of msg[, headers][, "bug: ..." to mark the case xfail])
CASES = [
    ("not a zip", "POST", "/push-project.json", archive(lambda: b"this is not a zip file" * 10), 400, "not a valid zip"),
    ("truncated zip", "POST", "/push-project.json", archive(lambda: offline_zip()[:300]), 400, "not a valid zip"),
    ("empty upload", "POST", "/push-project.json", archive(lambda: b""), 400, "missing parameter 'archive'"),
    # Unknown POST fields are refused (b0bb991) before the archive is looked for.
    ("no archive field", "POST", "/push-project.json", form(name="x"), 400, "unknown parameter 'name'"),
    ("no body at all", "POST", "/push-project.json", None, 400, "missing parameter 'archive'"),
    ("empty zip", "POST", "/push-project.json", archive(lambda: make_zip([])), 400, "no project found"),
    ("zip without a project folder", "POST", "/push-project.json", archive(lambda: make_zip([("settings.py", b"", None)])), 400, "no project found"),
    ("zip without scrapy.cfg", "POST", "/push-project.json", archive(lambda: make_zip(project_files()[1:])), 400, "no project found"),
    ("scrapy.cfg at the top level", "POST", "/push-project.json", archive(lambda: make_zip([("scrapy.cfg", cfg("evil"), None), ("evil/settings.py", b"", None)])), 400, "top level"),
    ("two top folders", "POST", "/push-project.json", archive(lambda: make_zip(project_files() + [("other/x.py", b"", None)])), 400, "more than one top folder"),
    ("scrapy.cfg without [deploy]", "POST", "/push-project.json", archive(lambda: make_zip([("evil/scrapy.cfg", b"[settings]\ndefault = evil.settings\n", None)])), 400, "[deploy] section"),
    ("scrapy.cfg not UTF-8", "POST", "/push-project.json", archive(lambda: make_zip([("evil/scrapy.cfg", b"[deploy]\nproject = \xff\xfe\n", None)])), 400, "cannot read the project name"),
    ("project name ../evil", "POST", "/push-project.json", archive(lambda: make_zip(project_files(cfg_name="../evil"))), 400, "is not allowed"),
    ("project name a/b", "POST", "/push-project.json", archive(lambda: make_zip(project_files(cfg_name="a/b"))), 400, "is not allowed"),
    ("project name .hidden", "POST", "/push-project.json", archive(lambda: make_zip(project_files(cfg_name=".hidden"))), 400, "is not allowed"),
    ("project name mismatch", "POST", "/push-project.json", archive(lambda: make_zip(project_files(cfg_name="other"))), 400, "but the top folder is"),
    ("zip-slip ../../", "POST", "/push-project.json", archive(lambda: with_entry(f"evil/../../{TOKEN}.py")), 400, "points outside"),
    ("zip-slip to /tmp", "POST", "/push-project.json", archive(lambda: with_entry(f"evil/{SLIP}tmp/{TOKEN}.py")), 400, "points outside"),
    ("zip-slip backslashes", "POST", "/push-project.json", archive(lambda: with_entry(f"evil\\..\\..\\{TOKEN}.py")), 400, "points outside"),
    ("absolute entry", "POST", "/push-project.json", archive(lambda: with_entry(f"/tmp/{TOKEN}.py")), 400, "absolute path"),
    ("drive-letter entry", "POST", "/push-project.json", archive(lambda: with_entry(f"C:/{TOKEN}.py")), 400, "absolute path"),
    ("symlink entry", "POST", "/push-project.json", archive(lambda: with_entry(f"evil/{TOKEN}", b"/etc/passwd", (stat.S_IFLNK | 0o777) << 16)), 400, "symbolic link"),
    ("symlink dir + file through it", "POST", "/push-project.json", archive(lambda: make_zip(project_files() + [("evil/link", b"/tmp", (stat.S_IFLNK | 0o777) << 16), (f"evil/link/{TOKEN}.py", b"x", None)])), 400, "symbolic link"),
    ("device entry", "POST", "/push-project.json", archive(lambda: with_entry(f"evil/{TOKEN}.dev", b"", (stat.S_IFCHR | 0o644) << 16)), 400, "not a regular file"),
    ("duplicate entry", "POST", "/push-project.json", archive(lambda: make_zip(project_files() + [("evil/a.py", b"1", None), ("evil/a.py", b"2", None)])), 400, "appears twice"),
    ("file and folder clash", "POST", "/push-project.json", archive(lambda: make_zip(project_files() + [("evil/a", b"1", None), ("evil/a/b.py", b"2", None)])), 400, "both a file and a folder"),
    ("name too long", "POST", "/push-project.json", archive(lambda: with_entry("evil/" + "a" * 300 + ".py")), 400, "cannot hold"),
    ("zip bomb, honest sizes", "POST", "/push-project.json", archive(zip_bomb), 413, "max-unpacked-size"),
    ("zip bomb, lying sizes", "POST", "/push-project.json", archive(lying_zip_bomb), 400, "cannot be unpacked"),
    ("too many entries", "POST", "/push-project.json", archive(too_many_entries), 413, "max-archive-files"),
    ("archive over max-archive-size", "POST", "/push-project.json", archive(lambda: oversized_archive(MAX_ARCHIVE + (256 << 10))), 413, "max-archive-size"),
    ("body far over the limit", "POST", "/push-project.json", archive(lambda: oversized_archive(MAX_ARCHIVE + (3 << 20))), 413, "max-archive-size"),
    ("zip needing version 6.4", "POST", "/push-project.json", archive(newer_version_zip), 400, "zip"),
    ("local header name not UTF-8", "POST", "/push-project.json", archive(local_name_not_utf8), 400, "cannot be unpacked"),
    ("spiders fail to import", "POST", "/push-project.json", archive(broken_imports), 400, "cannot list the spiders"),
    ("requirements: an index option", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"-i https://evil.example/simple\n")), 400, "line 1: '-i https"),
    ("requirements: a local path", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"requests\n../../etc\n")), 400, "line 2"),
    ("requirements: a file: URL", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"x @ file:///etc/passwd\n")), 400, "a direct URL is not taken"),
    ("requirements: over 64 KiB", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"a\n" * 40000)), 400, "larger than 64 KiB"),
    ("requirements: not UTF-8", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"caf\xe9\n")), 400, "not UTF-8"),
    ("requirements: not a requirement", "POST", "/push-project.json",
     archive(lambda: with_requirements(b"$(rm -rf /)\n")), 400, "is not a requirement"),
    ("unknown project", "GET", "/list-spiders.json?project=nope", None, 404, "unknown project"),
    ("project with path chars", "GET", "/list-spiders.json?project=..%2F..%2Fetc", None, 404, "unknown project"),
    ("missing project parameter", "GET", "/list-spiders.json", None, 400, "missing parameter 'project'"),
    ("schedule unknown project", "POST", "/schedule-job.json", form(project="nope", spider="quick"), 404, "unknown project"),
    ("schedule unknown spider", "POST", "/schedule-job.json", form(project="offline", spider="nope"), 404, "has no spider"),
    ("schedule without spider", "POST", "/schedule-job.json", form(project="offline"), 400, "missing parameter 'spider'"),
    ("remove unknown project", "POST", "/remove-project.json", form(name="../offline"), 404, "unknown project"),
    ("unknown job", "GET", f"/list-jobs.json?id={UNKNOWN_JOB}", None, 404, "unknown job"),
    ("cancel unknown job", "POST", "/cancel-job.json", form(id=UNKNOWN_JOB), 404, "unknown job"),
    ("malformed job id", "GET", "/list-jobs.json?id=not-a-uuid", None, 400, "is not a job identifier"),
    ("job id with traversal", "POST", "/cancel-job.json", form(id="../../projects/scrapy-do.db"), 400, "is not a job identifier"),
    ("job id SQL", "GET", "/list-jobs.json?id=%27%20OR%201%3D1%20--", None, 400, "is not a job identifier"),
    ("unknown status", "GET", "/list-jobs.json?status=BOGUS", None, 400, "unknown status"),
    ("negative limit", "GET", "/list-jobs.json?status=ACTIVE&limit=-1", None, 400, "at least 0"),
    ("huge limit", "GET", "/list-jobs.json?status=ACTIVE&limit=99999999999999999999", None, 400, "limit"),
    ("huge offset", "GET", "/list-jobs.json?status=COMPLETED&offset=99999999999999999999", None, 400, "offset"),
    ("limit + offset overflow", "GET", "/list-jobs.json?status=ACTIVE&limit=9223372036854775807&offset=1", None, 400, "limit"),
    ("non-numeric offset", "GET", "/list-jobs.json?status=ACTIVE&offset=1e9", None, 400, "whole number"),
    ("spec: empty", "POST", "/schedule-job.json", form(project="offline", spider="quick", when=""), 400, "empty spec"),
    ("spec: unknown word", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="tomorrow"), 400, "unknown word"),
    ("spec: no unit", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 5"), 400, "missing unit"),
    ("spec: zero", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 0 minutes"), 400, "not positive"),
    ("spec: negative", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every -3 hours"), 400, "not positive"),
    ("spec: fraction", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 1.5 minutes"), 400, "not a whole number"),
    ("spec: reversed range", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 10 to 5 minutes"), 400, "smaller than"),
    ("spec: bad time", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every day at 25:00"), 400, "out of range"),
    ("spec: trailing word", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 10 minutes please"), 400, "unexpected word"),
    ("spec: too long a period", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every 99999999999999999999 weeks"), 400, "too long"),
    ("spec: NUL byte", "POST", "/schedule-job.json", form(project="offline", spider="quick", when="every\x00minute"), 400, "unknown word"),
    ("spec: preview", "GET", "/preview-schedule.json?when=every+monday+at+7", None, 400, "invalid time"),
    ("preview count too big", "GET", "/preview-schedule.json?when=every+hour&count=51", None, 400, "at most 50"),
    ("payload not JSON", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload="{pages: 1"), 400, "not valid JSON"),
    ("payload not an object", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload="[1, 2]"), 400, "must be a JSON object"),
    ("payload a string", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload='"x"'), 400, "must be a JSON object"),
    ("payload nested too deep", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload="[" * 30000), 400, "payload"),
    ("payload with lone surrogate", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload='{"a": "\\ud800"}'), 400, "payload"),
    ("payload NaN", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload="NaN"), 400, "must be a JSON object"),
    ("oversized description", "POST", "/schedule-job.json", form(project="offline", spider="quick", description=BIG), 413, "longer than"),
    ("oversized payload", "POST", "/schedule-job.json", form(project="offline", spider="quick", payload='{"a": "' + BIG + '"}'), 413, "longer than"),
    ("oversized id", "POST", "/cancel-job.json", form(id=BIG), 413, "longer than"),
    ("get-log ../", "GET", "/get-log/data/../../scrapy-do.conf", None, 404, "no log"),
    ("get-log %2e%2e", "GET", "/get-log/data/%2e%2e/%2e%2e/scrapy-do.conf", None, 404, "no log"),
    ("get-log %2F", "GET", "/get-log/data/..%2F..%2Fscrapy-do.conf", None, 404, "no log"),
    ("get-log absolute", "GET", "/get-log/data//etc/passwd", None, 404, "no such endpoint"),
    ("get-log double-encoded", "GET", "/get-log/data/%252e%252e%252fscrapy-do.conf", None, 404, "no log"),
    ("get-log id then traversal", "GET", f"/get-log/data/{UNKNOWN_JOB}.out/../../../scrapy-do.conf", None, 404, "no log"),
    ("get-log unknown job", "GET", f"/get-log/data/{UNKNOWN_JOB}.out", None, 404, "unknown job"),
    ("get-log NUL", "GET", f"/get-log/data/{UNKNOWN_JOB}.out%00.txt", None, 404, "no log"),
    ("non-UTF-8 query", "GET", "/list-spiders.json?project=%FF%FE", None, 400, "not valid UTF-8"),
    ("non-UTF-8 urlencoded body", "POST", "/schedule-job.json", urlencoded("project=offline&spider=%FFquick"), 400, "not valid UTF-8"),
    ("non-UTF-8 multipart field", "POST", "/cancel-job.json", form(id=lambda: ("id", b"\xff\xfe\xfd")), 400, "not valid UTF-8"),
    ("garbage multipart", "POST", "/schedule-job.json", raw_bytes(b"--x\r\n\r\n\xff" * 50, "multipart/form-data; boundary=x"), 400, "missing parameter"),
    ("multipart without parts", "POST", "/schedule-job.json", raw_bytes(b"--x--\r\n", "multipart/form-data; boundary=x"), 400, "cannot be parsed"),
    ("GET on schedule-job", "GET", "/schedule-job.json", None, 405, "is not allowed here"),
    ("POST on status", "POST", "/status.json", form(x="1"), 405, "is not allowed here"),
    ("DELETE on list-jobs", "DELETE", "/list-jobs.json", None, 405, "is not allowed here"),
    ("unknown endpoint", "GET", "/nope.json", None, 404, "no such endpoint"),
    ("unknown endpoint traversal", "GET", "/../../etc/passwd", None, 404, "no such endpoint"),
    ("spec: 5000-digit interval", "POST", "/schedule-job.json", form(project="offline", spider="quick", when=f"every {HUGE} seconds"), 400, "too long"),
    ("spec: 5000-digit 'to' bound", "POST", "/schedule-job.json", form(project="offline", spider="quick", when=f"every 5 to {HUGE} minutes"), 400, "too long"),
    ("spec: 5000 leading zeros", "POST", "/schedule-job.json", form(project="offline", spider="quick", when=f"every {'0' * 5000}0 seconds"), 400, "not positive"),
    ("spec: preview 5000 digits", "GET", f"/preview-schedule.json?when=every+{HUGE}+seconds", None, 400, "too long"),
    ("limit of 5000 digits", "GET", f"/list-jobs.json?status=ACTIVE&limit={HUGE}", None, 400, "limit"),
    ("preview count of 5000 digits", "GET", f"/preview-schedule.json?when=every+hour&count={HUGE}", None, 400, "count"),
    ("Range start of 5000 digits", "GET", lambda d: finished_log(d), None, 416, "ask for a range", {"Range": f"bytes={HUGE}-"}),
    ("Range start of 5000 digits with end", "GET", lambda d: finished_log(d), None, 416, "ask for a range", {"Range": f"bytes={HUGE}-{HUGE}"}),
    ("ui: directory listing", "GET", "/ui/views/", None, 404, "no such endpoint"),
    ("ui: the root folder", "GET", "/ui/", None, 404, "no such endpoint"),
    ("ui: unknown file", "GET", "/ui/nope.js", None, 404, "no such endpoint"),
    ("ui: unknown file in a folder", "GET", "/ui/views/nope.js", None, 404, "no such endpoint"),
    ("oversized field in a 1 MiB body", "POST", "/schedule-job.json", form(project="offline", spider="quick", description="d" * (1 << 20)), 413, "longer than"),
    ("truncated 2 MiB multipart body", "POST", "/push-project.json", raw_bytes(b"--x\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.zip\"\r\n\r\n" + b"PK" * (1 << 20), "multipart/form-data; boundary=x"), 400, "ends inside a part"),
    ("2 MiB archive that is not a zip", "POST", "/push-project.json", archive(lambda: oversized_archive(2 << 20)), 400, "not a valid zip"),
    ("push through an encoded path", "POST", "/push%2Dproject.json", archive(lambda: b"this is not a zip file" * 10), 400, "not a valid zip"),
]

#: More than MAX_ARGUMENTS (64 KiB) of '[': over the field limit before any JSON is read.
DEEP_AND_BIG = "[" * 100000
DEEP = "[" * 60000
ARGS_VALUE = "must be a whole number from"
# Spider arguments, setting overrides, priority, timeout and how a schedule runs (b0bb991, f4f2712).
CASES += [
    ("args not JSON", "POST", "/schedule-job.json", schedule_form(args="{category: books"), 400, "args is not valid JSON"),
    ("args a JSON array", "POST", "/schedule-job.json", schedule_form(args='["category", "books"]'), 400, "args must be a JSON object"),
    ("args a string", "POST", "/schedule-job.json", schedule_form(args='"category=books"'), 400, "args must be a JSON object"),
    ("args null", "POST", "/schedule-job.json", schedule_form(args="null"), 400, "args must be a JSON object"),
    ("args nested too deep", "POST", "/schedule-job.json", schedule_form(args=DEEP), 400, "args is nested too deeply"),
    ("args 100000 '['", "POST", "/schedule-job.json", schedule_form(args=DEEP_AND_BIG), 413, "'args'"),
    ("args key a-b", "POST", "/schedule-job.json", schedule_form(args='{"a-b": 1}'), 400, "'a-b' is not a spider argument name"),
    ("args key empty", "POST", "/schedule-job.json", schedule_form(args='{"": 1}'), 400, "'' is not a spider argument name"),
    ("args key 1x", "POST", "/schedule-job.json", schedule_form(args='{"1x": 1}'), 400, "'1x' is not a spider argument name"),
    ("args key with a space and =", "POST", "/schedule-job.json", schedule_form(args='{"a =b": 1}'), 400, "is not a spider argument name"),
    ("args holding payload", "POST", "/schedule-job.json", schedule_form(args='{"payload": "{}"}'), 400, "args may not hold 'payload'"),
    ("args with lone surrogate", "POST", "/schedule-job.json", schedule_form(args='{"a": "\\ud800"}'), 400, "args holds an unpaired surrogate"),
    ("args over 64 KiB", "POST", "/schedule-job.json", schedule_form(args='{"a": "' + BIG + '"}'), 413, "'args'"),
    ("settings not JSON", "POST", "/schedule-job.json", schedule_form(settings="DOWNLOAD_DELAY=2"), 400, "settings is not valid JSON"),
    ("settings not an object", "POST", "/schedule-job.json", schedule_form(settings='[["DOWNLOAD_DELAY", 2]]'), 400, "settings must be a JSON object"),
    ("settings nested too deep", "POST", "/schedule-job.json", schedule_form(settings=DEEP), 400, "settings is nested too deeply"),
    ("settings lower-case name", "POST", "/schedule-job.json", schedule_form(settings='{"download_delay": 2}'), 400, "'download_delay' is not a Scrapy setting name"),
    ("settings dotted name", "POST", "/schedule-job.json", schedule_form(settings='{"scrapy.settings.LOG_FILE": "x"}'), 400, "is not a Scrapy setting name"),
    ("settings LOG_FILE", "POST", "/schedule-job.json", schedule_form(settings=f'{{"LOG_FILE": "/tmp/{TOKEN}.log"}}'), 400, "settings may not override LOG_FILE"),
    ("settings with lone surrogate", "POST", "/schedule-job.json", schedule_form(settings='{"BOT_NAME": "\\udfff"}'), 400, "settings holds an unpaired surrogate"),
    ("settings over 64 KiB", "POST", "/schedule-job.json", schedule_form(settings='{"BOT_NAME": "' + BIG + '"}'), 413, "'settings'"),
    ("priority 1001", "POST", "/schedule-job.json", schedule_form(priority="1001"), 400, f"priority {ARGS_VALUE} -1000 to 1000"),
    ("priority -1001", "POST", "/schedule-job.json", schedule_form(priority="-1001"), 400, f"priority {ARGS_VALUE} -1000 to 1000"),
    ("priority 1.5", "POST", "/schedule-job.json", schedule_form(priority="1.5"), 400, "not '1.5'"),
    ("priority abc", "POST", "/schedule-job.json", schedule_form(priority="abc"), 400, "not 'abc'"),
    ("priority of 5000 digits", "POST", "/schedule-job.json", schedule_form(priority=HUGE), 400, f"priority {ARGS_VALUE}"),
    ("priority empty", "POST", "/schedule-job.json", schedule_form(priority=""), 400, "not ''"),
    ("priority full-width digits", "POST", "/schedule-job.json", schedule_form(priority="\uff11"), 400, f"priority {ARGS_VALUE}"),
    ("timeout 0", "POST", "/schedule-job.json", schedule_form(timeout="0"), 400, f"timeout {ARGS_VALUE} 1 to 604800 seconds"),
    ("timeout 604801", "POST", "/schedule-job.json", schedule_form(timeout="604801"), 400, f"timeout {ARGS_VALUE} 1 to 604800 seconds"),
    ("timeout -1", "POST", "/schedule-job.json", schedule_form(timeout="-1"), 400, "not '-1'"),
    ("fail-on-errors maybe", "POST", "/schedule-job.json", schedule_form(**{"fail-on-errors": "maybe"}), 400,
     "fail-on-errors must be on or off"),
    ("fail_on_errors by its attribute name", "POST", "/schedule-job.json",
     schedule_form(fail_on_errors="on"), 400, "fail_on_errors"),
    ("warm maybe", "POST", "/schedule-job.json", schedule_form(warm="maybe"), 400, "warm must be on or off, not 'maybe'"),
    ("warm empty", "POST", "/schedule-job.json", schedule_form(warm=""), 400, "warm must be on or off, not ''"),
    ("warm of 5000 characters", "POST", "/schedule-job.json", schedule_form(warm="o" * 5000), 400, "warm must be on or off"),
    ("warm over 64 KiB", "POST", "/schedule-job.json", schedule_form(warm=BIG), 413, "'warm'"),
    ("warm NUL", "POST", "/schedule-job.json", schedule_form(warm="\x00"), 400, "warm must be on or off"),
    ("warm on then NUL", "POST", "/schedule-job.json", periodic(warm="on\x00"), 400, "warm must be on or off"),
    ("timeout 1e3", "POST", "/schedule-job.json", schedule_form(timeout="1e3"), 400, "not '1e3'"),
    ("timeout of 5000 digits", "POST", "/schedule-job.json", schedule_form(timeout=HUGE), 400, f"timeout {ARGS_VALUE}"),
    ("timezone Mars/Olympus", "POST", "/schedule-job.json", periodic(timezone="Mars/Olympus"), 400, "'Mars/Olympus' is not a time zone this server knows"),
    ("timezone traversal", "POST", "/schedule-job.json", periodic(timezone="../../etc/passwd"), 400, "is not a time zone this server knows"),
    ("timezone absolute path", "POST", "/schedule-job.json", periodic(timezone="/usr/share/zoneinfo/UTC"), 400, "is not a time zone this server knows"),
    ("timezone of 5000 characters", "POST", "/schedule-job.json", periodic(timezone="Z" * 5000), 400, "is not a time zone this server knows"),
    ("timezone NUL", "POST", "/schedule-job.json", periodic(timezone="\x00"), 400, "is not a time zone this server knows"),
    ("overlap sometimes", "POST", "/schedule-job.json", periodic(overlap="sometimes"), 400, "overlap must be allow or skip, not 'sometimes'"),
    ("catch-up maybe", "POST", "/schedule-job.json", periodic(**{"catch-up": "maybe"}), 400, "catch-up must be on or off, not 'maybe'"),
    ("overlap with when=now", "POST", "/schedule-job.json", schedule_form(when="now", overlap="skip"), 400, "overlap applies only to periodic jobs"),
    ("timezone with when=now", "POST", "/schedule-job.json", schedule_form(when="now", timezone="UTC"), 400, "timezone applies only to periodic jobs"),
    ("catch-up without when", "POST", "/schedule-job.json", schedule_form(**{"catch-up": "on"}), 400, "catch-up applies only to periodic jobs"),
    ("all three with when=now", "POST", "/schedule-job.json", schedule_form(when="now", overlap="allow", timezone="UTC", **{"catch-up": "off"}), 400, "catch-up, overlap, timezone apply only to periodic jobs"),
    ("unknown field category", "POST", "/schedule-job.json", schedule_form(category="travel"), 400, "unknown parameter 'category'"),
    ("unknown field catch_up", "POST", "/schedule-job.json", periodic(catch_up="on"), 400, "unknown parameter 'catch_up'"),
    ("unknown field job_id", "POST", "/schedule-job.json", schedule_form(job_id=UNKNOWN_JOB), 400, "unknown parameter 'job_id'"),
    ("cron: minute 61", "POST", "/schedule-job.json", schedule_form(when="61 * * * *"), 400, "invalid cron expression"),
    ("cron: step 0", "POST", "/schedule-job.json", schedule_form(when="*/0 * * * *"), 400, "invalid cron expression"),
    ("cron: never runs", "POST", "/schedule-job.json", schedule_form(when="0 0 31 2 *"), 400, "never runs"),
    ("cron: six fields", "POST", "/schedule-job.json", schedule_form(when="* * * * * *"), 400, "6 fields"),
    ("cron: alias", "POST", "/schedule-job.json", schedule_form(when="@reboot"), 400, "invalid cron expression"),
    ("cron: 5000-digit step", "POST", "/schedule-job.json", schedule_form(when=f"*/{HUGE} * * * *"), 400, "invalid cron expression"),
    ("cron: preview minute 61", "GET", "/preview-schedule.json?when=61+*+*+*+*", None, 400, "invalid cron expression"),
    ("preview bad timezone", "GET", "/preview-schedule.json?when=every+hour&timezone=..%2F..%2Fetc%2Fpasswd", None, 400, "is not a time zone"),
]


def a_schedule(daemon, paused=False):
    """A SCHEDULED job (every 2 hours: never due during the run), made once (again if it was removed)."""
    attr = "paused_schedule" if paused else "schedule"
    known = getattr(daemon, attr, None)
    if known is None or daemon.get("/list-jobs.json", id=known)[0] != 200 or daemon.job(known)["status"] != "SCHEDULED":
        code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": "quick",
                                                           "when": "every 2 hours", "description": f"{TOKEN}-{attr}"})
        assert code == 200, body
        known = body["identifier"]
        if paused:
            assert daemon.request("/pause-job.json", {"job_id": known})[0] == 200
        setattr(daemon, attr, known)
    return known


def a_paused_schedule(daemon):
    return a_schedule(daemon, paused=True)


def a_finished_run(daemon):
    """A run of `quick` that completed (SUCCESSFUL): not SCHEDULED, so it cannot be paused, resumed or edited."""
    finished_log(daemon)
    return daemon.finished_log[0]


# pause-job.json, resume-job.json, edit-job.json and remove-project.json (f4f2712).
for _endpoint, _verb in (("pause", "paused"), ("resume", "resumed"), ("edit", "edited")):
    _path = f"/{_endpoint}-job.json"
    CASES += [
        (f"{_endpoint}: no job_id", "POST", _path, None, 400, "missing parameter 'job_id'"),
        (f"{_endpoint}: empty job_id", "POST", _path, form(job_id=""), 400, "missing parameter 'job_id'"),
        (f"{_endpoint}: malformed job_id", "POST", _path, form(job_id="not-a-uuid"), 400, "is not a job identifier"),
        (f"{_endpoint}: job_id with traversal", "POST", _path, form(job_id="../../projects/scrapy-do.db"), 400, "is not a job identifier"),
        (f"{_endpoint}: job_id SQL", "POST", _path, form(job_id="' OR 1=1 --"), 400, "is not a job identifier"),
        (f"{_endpoint}: oversized job_id", "POST", _path, form(job_id=BIG), 413, "longer than"),
        (f"{_endpoint}: unknown job", "POST", _path, form(job_id=UNKNOWN_JOB), 404, "unknown job"),
        (f"{_endpoint}: unknown job as id", "POST", _path, form(id=UNKNOWN_JOB), 404, "unknown job"),
        (f"{_endpoint}: a finished run", "POST", _path, with_job(a_finished_run), 409, f"only a SCHEDULED (periodic) job can be {_verb}"),
        (f"{_endpoint}: unknown field", "POST", _path, with_job(a_schedule, category="travel"), 400, "unknown parameter 'category'"),
        (f"{_endpoint}: unknown field on a paused schedule", "POST", _path, with_job(a_paused_schedule, force="yes"), 400, "unknown parameter 'force'"),
    ]
CASES += [
    ("edit: when=now on a schedule", "POST", "/edit-job.json", with_job(a_schedule, when="now"), 400, "a periodic job stays periodic"),
    ("edit: when=now on a paused schedule", "POST", "/edit-job.json", with_job(a_paused_schedule, when="now"), 400, "a periodic job stays periodic"),
    ("edit: empty when", "POST", "/edit-job.json", with_job(a_schedule, when=""), 400, "empty spec"),
    ("edit: bad spec", "POST", "/edit-job.json", with_job(a_schedule, when="every 0 minutes"), 400, "not positive"),
    ("edit: bad cron", "POST", "/edit-job.json", with_job(a_schedule, when="61 * * * *"), 400, "invalid cron expression"),
    ("edit: priority 1001", "POST", "/edit-job.json", with_job(a_schedule, priority="1001"), 400, f"priority {ARGS_VALUE} -1000 to 1000"),
    ("edit: priority abc", "POST", "/edit-job.json", with_job(a_schedule, priority="abc"), 400, "not 'abc'"),
    ("edit: priority of 5000 digits", "POST", "/edit-job.json", with_job(a_schedule, priority=HUGE), 400, f"priority {ARGS_VALUE}"),
    ("edit: bad priority and a good one", "POST", "/edit-job.json", with_job(a_schedule, description="changed", priority="1.5"), 400, "not '1.5'"),
    ("edit: bad priority on an unknown job", "POST", "/edit-job.json", form(job_id=UNKNOWN_JOB, priority="abc"), 400, "not 'abc'"),
    ("edit: timeout 0", "POST", "/edit-job.json", with_job(a_schedule, timeout="0"), 400, f"timeout {ARGS_VALUE}"),
    ("edit: args with payload", "POST", "/edit-job.json", with_job(a_schedule, args='{"payload": 1}'), 400, "args may not hold 'payload'"),
    ("edit: settings LOG_FILE", "POST", "/edit-job.json", with_job(a_schedule, settings='{"LOG_FILE": "/etc/passwd"}'), 400, "settings may not override LOG_FILE"),
    ("edit: bad timezone", "POST", "/edit-job.json", with_job(a_schedule, timezone="../../etc/passwd"), 400, "is not a time zone"),
    ("edit: overlap sometimes", "POST", "/edit-job.json", with_job(a_schedule, overlap="sometimes"), 400, "overlap must be allow or skip"),
    ("edit: catch-up maybe", "POST", "/edit-job.json", with_job(a_schedule, **{"catch-up": "maybe"}), 400, "catch-up must be on or off"),
    ("edit: warm maybe", "POST", "/edit-job.json", with_job(a_schedule, warm="maybe"), 400, "warm must be on or off, not 'maybe'"),
    ("edit: warm empty", "POST", "/edit-job.json", with_job(a_schedule, warm=""), 400, "warm must be on or off, not ''"),
    ("edit: warm of 5000 characters", "POST", "/edit-job.json", with_job(a_schedule, warm="o" * 5000), 400, "warm must be on or off"),
    ("edit: warm NUL", "POST", "/edit-job.json", with_job(a_schedule, warm="\x00"), 400, "warm must be on or off"),
    ("edit: bad warm and a good description", "POST", "/edit-job.json", with_job(a_schedule, description="changed", warm="maybe"), 400, "warm must be on or off"),
    ("edit: bad warm on a paused schedule", "POST", "/edit-job.json", with_job(a_paused_schedule, warm="sometimes"), 400, "warm must be on or off"),
    ("edit: payload is not editable", "POST", "/edit-job.json", with_job(a_schedule, payload="{}"), 400, "unknown parameter 'payload'"),
    ("edit: spider is not editable", "POST", "/edit-job.json", with_job(a_schedule, spider="slow"), 400, "unknown parameter 'spider'"),
    ("edit: project is not editable", "POST", "/edit-job.json", with_job(a_schedule, project="other"), 400, "unknown parameter 'project'"),
    ("remove-project: no name nor project", "POST", "/remove-project.json", None, 400, "missing parameter 'name' (or 'project')"),
    ("report: no token", "POST", f"/report/{UNKNOWN_JOB}.json",
     raw_bytes(b'{"stats": {}, "summary": {}}', "application/json"), 403, "takes reports with this token"),
    ("report: not JSON", "POST", f"/report/{UNKNOWN_JOB}.json", raw_bytes(b"{", "application/json"), 400,
     "a report is a JSON object"),
    ("report: a JSON array", "POST", f"/report/{UNKNOWN_JOB}.json", raw_bytes(b"[]", "application/json"), 400,
     "a report is a JSON object"),
    ("report: nested too deeply", "POST", f"/report/{UNKNOWN_JOB}.json",
     raw_bytes(b"[" * 100000, "application/json"), 400, "a report is a JSON object"),
    ("report: over 1 MiB", "POST", f"/report/{UNKNOWN_JOB}.json",
     raw_bytes(b'{"stats": "' + b"x" * (1 << 20) + b'"}', "application/json"), 413, "a report is larger"),
    ("report: malformed job id", "POST", "/report/not-a-job.json",
     raw_bytes(b'{"stats": {}, "summary": {}}', "application/json"), 400, "is not a job identifier"),
    ("report: a path for a job id", "POST", "/report/..%2F..%2Fx.json",
     raw_bytes(b'{"stats": {}, "summary": {}}', "application/json"), 404, "no such endpoint"),
    ("items: no token", "POST", f"/report/{UNKNOWN_JOB}/items.jl?first=0",
     raw_bytes(b'{"n": 1}\n', "application/x-ndjson"), 403, "takes reports with this token"),
    ("items: no first", "POST", f"/report/{UNKNOWN_JOB}/items.jl",
     raw_bytes(b'{"n": 1}\n', "application/x-ndjson"), 400, "missing parameter 'first'"),
    ("items: first not a number", "POST", f"/report/{UNKNOWN_JOB}/items.jl?first=x",
     raw_bytes(b'{"n": 1}\n', "application/x-ndjson"), 400, "must be a whole number"),
    ("items: first negative", "POST", f"/report/{UNKNOWN_JOB}/items.jl?first=-1",
     raw_bytes(b'{"n": 1}\n', "application/x-ndjson"), 400, "must be at least 0"),
    ("items: a batch over 8 MiB", "POST", f"/report/{UNKNOWN_JOB}/items.jl?first=0",
     raw_bytes(b'{"n": 1}\n' * (1 << 20), "application/x-ndjson"), 413, "a batch of items is larger"),
    ("items: malformed job id", "POST", "/report/not-a-job/items.jl?first=0",
     raw_bytes(b'{"n": 1}\n', "application/x-ndjson"), 400, "is not a job identifier"),
    ("output: no token", "POST", f"/report/{UNKNOWN_JOB}/log.err?offset=0",
     raw_bytes(b"a line\n", "application/octet-stream"), 403, "takes reports with this token"),
    ("output: no offset", "POST", f"/report/{UNKNOWN_JOB}/log.err",
     raw_bytes(b"a line\n", "application/octet-stream"), 400, "missing parameter 'offset'"),
    ("output: offset not a number", "POST", f"/report/{UNKNOWN_JOB}/log.out?offset=x",
     raw_bytes(b"a line\n", "application/octet-stream"), 400, "must be a whole number"),
    ("output: offset negative", "POST", f"/report/{UNKNOWN_JOB}/log.out?offset=-1",
     raw_bytes(b"a line\n", "application/octet-stream"), 400, "must be at least 0"),
    ("output: another stream", "POST", f"/report/{UNKNOWN_JOB}/log.in?offset=0",
     raw_bytes(b"a line\n", "application/octet-stream"), 404, "log.out or log.err"),
    ("output: a piece over 8 MiB", "POST", f"/report/{UNKNOWN_JOB}/log.err?offset=0",
     raw_bytes(b"x" * ((8 << 20) + 1), "application/octet-stream"), 413, "a piece of output is larger"),
    ("output: malformed job id", "POST", "/report/not-a-job/log.err?offset=0",
     raw_bytes(b"a line\n", "application/octet-stream"), 400, "is not a job identifier"),
    ("environment: no project", "GET", "/project-environment.json", None, 400, "missing parameter 'project'"),
    ("environment: unknown project", "GET", "/project-environment.json?project=nope", None, 404, "unknown project"),
    ("build log: unknown project", "GET", "/get-log/build/nope.log", None, 404, "unknown project"),
    ("build log: no requirements.txt", "GET", "/get-log/build/offline.log", None, 404, "has no environment"),
    ("build log: a path", "GET", "/get-log/build/..%2F..%2Fscrapy-do.db.log", None, 404, "no"),
    ("get-items: unknown job", "GET", f"/get-items/{UNKNOWN_JOB}.jl", None, 404, "unknown job"),
    ("get-items: unknown job as CSV", "GET", f"/get-items/{UNKNOWN_JOB}.csv", None, 404, "unknown job"),
    ("get-items: malformed job id", "GET", "/get-items/not-a-job.jl", None, 404, "no job 'not-a-job'"),
    ("get-items: another type", "GET", f"/get-items/{UNKNOWN_JOB}.xml", None, 404, "no such endpoint"),
    ("get-items: a path", "GET", "/get-items/..%2F..%2Fscrapy-do.db.jl", None, 404, "no"),
    ("get-stats: malformed job id", "GET", "/get-stats/not-a-job.json", None, 400, "is not a job identifier"),
    ("get-stats: unknown job", "GET", f"/get-stats/{UNKNOWN_JOB}.json", None, 404, "unknown job"),
    ("list-data: no project", "GET", "/list-data.json", None, 400, "missing parameter 'project'"),
    ("list-data: unknown project", "GET", "/list-data.json?project=..%2F..", None, 404, "unknown project"),
    ("get-data: traversal", "GET", "/get-data/offline/..%2F..%2Fscrapy-do.db", None, 404, "has no data file"),
    ("get-data: dot segments", "GET", "/get-data/offline/a/./b", None, 404, "has no data file"),
    ("get-data: NUL", "GET", "/get-data/offline/a%00b", None, 404, "has no data file"),
    ("get-data: unknown project", "GET", "/get-data/nope/x.jl", None, 404, "unknown project"),
    ("get-data: 5000 characters", "GET", "/get-data/offline/" + "a" * 5000, None, 404, "has no data file"),
    ("wait-job: no job_id", "GET", "/wait-job.json", None, 400, "missing parameter 'job_id'"),
    ("wait-job: malformed job_id", "GET", "/wait-job.json?job_id=..%2F..%2Fetc", None, 400, "is not a job identifier"),
    ("wait-job: unknown job", "GET", "/wait-job.json?job_id=6c3e0a5e-0000-4000-8000-000000000000", None, 404,
     "unknown job"),
    ("wait-job: timeout too long", "GET", "/wait-job.json?job_id=6c3e0a5e-0000-4000-8000-000000000000&timeout=3601",
     None, 400, "at most 3600"),
    ("wait-job: timeout of 5000 digits", "GET", "/wait-job.json?job_id=6c3e0a5e-0000-4000-8000-000000000000&timeout="
     + "9" * 5000, None, 400, "at most 3600"),
    # Empty is a name here (as project='' is for schedule-job), not a missing parameter.
    ("remove-project: both empty", "POST", "/remove-project.json", form(name="", project=""), 400,
     "missing parameter 'name'"),
    ("remove-project: unknown field", "POST", "/remove-project.json", form(name="offline", force="yes"), 400, "unknown parameter 'force'"),
    ("remove-project: unknown project", "POST", "/remove-project.json", form(project="../offline"), 404, "unknown project"),
    ("remove-project: with a schedule", "POST", "/remove-project.json", needing(a_schedule, form(name="offline")), 409, "scheduled job(s); cancel them"),
    # Schedule names and notify URLs (issue 16).
    ("name: path", "POST", "/schedule-job.json", periodic(name="../etc/passwd"), 400, "name must be"),
    ("name: 5000 characters", "POST", "/schedule-job.json", periodic(name="a" * 5000), 400, "name must be"),
    ("name: NUL", "POST", "/schedule-job.json", periodic(name="a\x00b"), 400, "name must be"),
    ("name: SQL", "POST", "/schedule-job.json", periodic(name="x' OR '1'='1"), 400, "name must be"),
    ("name with when=now", "POST", "/schedule-job.json", schedule_form(name="now-job"), 400, "name applies only to periodic jobs"),
    ("edit: bad name", "POST", "/edit-job.json", with_job(a_schedule, name="a b"), 400, "name must be"),
    ("notify: file URL", "POST", "/schedule-job.json", schedule_form(notify="file:///etc/passwd"), 400, "notify must be"),
    ("notify: javascript", "POST", "/schedule-job.json", periodic(notify="javascript:alert(1)"), 400, "notify must be"),
    ("notify: header injection", "POST", "/schedule-job.json", schedule_form(notify="http://a/\r\nX-Evil: 1"), 400, "notify must be"),
    ("notify: credentials", "POST", "/schedule-job.json", schedule_form(notify="https://user:pw@example.com/x"), 400, "holds credentials"),
    ("notify: unparsable port", "POST", "/schedule-job.json", schedule_form(notify="http://a:80x/"), 400, "notify must be"),
    ("notify: 5000 characters", "POST", "/schedule-job.json", schedule_form(notify="http://a/" + "x" * 5000), 400, "notify must be"),
    ("edit: bad notify", "POST", "/edit-job.json", with_job(a_schedule, notify="gopher://a/"), 400, "notify must be"),
    ("webhooks: limit 0", "GET", "/webhooks.json?limit=0", None, 400, "limit"),
    ("webhooks: limit of 5000 digits", "GET", f"/webhooks.json?limit={HUGE}", None, 400, "limit"),
    ("webhooks: bad state", "GET", "/webhooks.json?state=../x", None, 400, "state must be pending, delivered or failed"),
    ("webhooks: unknown field", "GET", "/webhooks.json?url=http://x/", None, 400, "unknown parameter 'url'"),
]

# --------------------------------------------------------------------------- the daemon and checks

IGNORED = ("scrapy-do.db", "log-dir", "spider-data")


def snapshot(workdir):
    """{relative path: size} of every file under `workdir`, the database, logs and daemon output aside."""
    out = {}
    for root, dirs, files in os.walk(workdir):
        rel = Path(root).relative_to(workdir)
        if rel.parts[:1] == ("projects",) and len(rel.parts) > 1 and rel.parts[1] in IGNORED:
            continue
        for name in files + [d + "/" for d in dirs]:
            if rel == Path(".") and name.startswith("daemon-"):
                continue
            if rel == Path("projects") and name.startswith(IGNORED):
                continue
            path = Path(root) / name.rstrip("/")
            try:
                out[str(rel / name)] = 0 if name.endswith("/") else path.stat().st_size
            except FileNotFoundError:  # removed while we looked: the next snapshot tells
                out[str(rel / name)] = -1
    return out


def stray_files():
    """Anything under /tmp (two levels down) carrying this run's TOKEN."""
    found = []
    for root, dirs, files in os.walk("/tmp"):
        found += [os.path.join(root, n) for n in files + dirs if TOKEN in n]
        if root.count(os.sep) >= 2:
            dirs[:] = []
    return found


@pytest.fixture(scope="module")
def hostile_daemon(tmp_path_factory):
    """One daemon subprocess with small archive limits and the offline project pushed once."""
    workdir = tmp_path_factory.mktemp("hostile")
    daemon = DaemonProcess(workdir, CONF).start()
    code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert code == 200, body
    yield daemon
    daemon.stop()


def stored_jobs(daemon):
    """{identifier: record} of every job in the store (ACTIVE first: a run finishing meanwhile is still seen)."""
    jobs = {}
    for group in ("ACTIVE", "COMPLETED"):
        code, body = daemon.get("/list-jobs.json", status=group, limit=100000)
        assert code == 200, body
        jobs.update((job["identifier"], job) for job in body["jobs"])
    return jobs


def assert_same_jobs(before, after):
    """No job was added or removed, and none changed, but for runs moving on by themselves (their status)."""
    assert sorted(after.keys() - before.keys()) == [], [after[k] for k in after.keys() - before.keys()][:3]
    assert sorted(before.keys() - after.keys()) == []
    changed = [(before[k], after[k]) for k in before if before[k]["status"] == after[k]["status"]
               and before[k] != after[k]]
    assert changed == []


def finished_log(daemon):
    """The path of the .out log of a `quick` job that completed (run again once completed-cap purged it)."""
    known = getattr(daemon, "finished_log", None)
    if known is None or daemon.get("/list-jobs.json", id=known[0])[0] != 200:
        code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": "quick"})
        assert code == 200, body
        daemon.wait_job(body["identifier"], {"SUCCESSFUL"})
        daemon.finished_log = (body["identifier"], f"/get-log/data/{body['identifier']}.out")
    return daemon.finished_log[1]


def send(daemon, method, path, body=None, timeout=60, headers=None):
    """One raw HTTP request (path sent verbatim); returns (status, headers, body bytes)."""
    host, port = urllib.parse.urlsplit(daemon.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        data = b""
        if body is not None:
            data, ctype = body()
            conn.putheader("Content-Type", ctype)
        if body is not None or method == "POST":
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        if data:
            conn.send(data)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type"), resp.read()
    finally:
        conn.close()


def _params(cases):
    """A case may end with a dict of extra request headers and then a "bug: ..." string (xfail)."""
    for case in cases:
        extra = list(case[6:])
        headers = extra.pop(0) if extra and isinstance(extra[0], dict) else {}
        marks = [pytest.mark.xfail(strict=True, reason=extra[0])] if extra else []
        yield pytest.param((*case[:6], headers), id=case[0], marks=marks)


@pytest.mark.parametrize("case", list(_params(CASES)))
def test_hostile_request_is_refused_cleanly(hostile_daemon, case):
    """Each hostile request gets its 4xx JSON error, writes nothing outside the store, and the daemon lives."""
    name, method, path, body, expected, fragment, headers = case
    if callable(path):  # a path that needs the daemon (e.g. a finished job's log)
        path = path(hostile_daemon)
    if getattr(body, "needs_daemon", False):  # a body naming a job the daemon holds
        body = body(hostile_daemon)
    workdir = hostile_daemon.workdir
    before = snapshot(workdir)
    jobs_before = stored_jobs(hostile_daemon)
    started = time.monotonic()
    code, ctype, raw = send(hostile_daemon, method, path, body, headers=headers)
    elapsed = time.monotonic() - started
    assert code == expected, raw[:500]
    assert ctype == "application/json", (ctype, raw[:200])
    answer = json.loads(raw)
    assert answer["status"] == "error" and isinstance(answer["msg"], str), answer
    assert set(answer) == {"status", "msg"}, answer
    assert fragment in answer["msg"], answer["msg"][:500]
    assert elapsed < 20, f"{name} took {elapsed:.1f} s"
    # A refused push removes its half-unpacked tree in a thread: give it a moment.
    deadline = time.monotonic() + 5
    while snapshot(workdir) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot(workdir) == before
    assert_same_jobs(jobs_before, stored_jobs(hostile_daemon))
    assert stray_files() == []
    code, status = hostile_daemon.get("/status.json")
    assert code == 200 and status["status"] == "ok"
    assert hostile_daemon.proc.poll() is None


def test_zip_bomb_is_refused_within_seconds(hostile_daemon):
    """A 2 MiB archive declaring 2 GiB is refused from its directory alone, in well under the limit."""
    bomb = zip_bomb()
    assert len(bomb) < MAX_ARCHIVE < MAX_UNPACKED
    started = time.monotonic()
    code, _, raw = send(hostile_daemon, "POST", "/push-project.json", archive(zip_bomb))
    assert code == 413 and time.monotonic() - started < 5, raw[:300]
    assert hostile_daemon.get("/list-projects.json")[1]["projects"] == ["offline"]


def test_concurrent_schedules_get_distinct_ids_and_are_all_stored(hostile_daemon):
    """64 schedule requests at once get 64 distinct ids and leave 64 SCHEDULED jobs in the store."""
    description = f"concurrent-{uuid.uuid4().hex}"
    fields = {"project": "offline", "spider": "quick", "when": "every 2 hours", "description": description}
    barrier = threading.Barrier(64, timeout=30)
    results, errors = [], []

    def client():
        data, ctype = multipart(fields)
        req = urllib.request.Request(hostile_daemon.url + "/schedule-job.json", data=data,
                                     headers={"Content-Type": ctype})
        try:
            barrier.wait()
            with urllib.request.urlopen(req, timeout=30) as resp:
                results.append(json.loads(resp.read())["identifier"])
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert len(results) == 64 and len(set(results)) == 64
    code, body = hostile_daemon.get("/list-jobs.json", status="SCHEDULED", limit=1000)
    assert code == 200
    stored = {j["identifier"] for j in body["jobs"] if j["description"] == description}
    assert stored == set(results)
    for identifier in results:
        assert hostile_daemon.request("/cancel-job.json", {"id": identifier})[0] == 200


def test_huge_range_numbers_are_beyond_any_log(hostile_daemon):
    """Range numbers of 5000 digits count as larger than the log: a suffix or an end that long means the whole log."""
    path = finished_log(hostile_daemon)
    code, _, whole = send(hostile_daemon, "GET", path)
    assert code == 200 and whole
    for header in (f"bytes=-{HUGE}", f"bytes=0-{HUGE}"):
        code, ctype, raw = send(hostile_daemon, "GET", path, headers={"Range": header})
        assert (code, raw) == (206, whole), (header[:20], code, raw[:200])
    # A running job's log is followed: the same header starts at byte 0 of it.
    code, body = hostile_daemon.request("/schedule-job.json", {"project": "offline", "spider": "slow"})
    assert code == 200, body
    identifier = body["identifier"]
    try:
        deadline = time.monotonic() + 30
        while hostile_daemon.job(identifier)["status"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
        host, port = urllib.parse.urlsplit(hostile_daemon.url).netloc.split(":")
        for header, expected in ((f"bytes=-{HUGE}", 206), (f"bytes={HUGE}-", 416)):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request("GET", f"/get-log/data/{identifier}.err", headers={"Range": header})
                resp = conn.getresponse()
                assert resp.status == expected, (header[:20], resp.status, resp.read(300))
                if expected == 206:
                    assert resp.getheader("content-range").startswith("bytes 0-")
                    assert resp.getheader("x-scrapy-do-following") == "yes"
            finally:
                conn.close()
    finally:
        assert hostile_daemon.request("/cancel-job.json", {"id": identifier})[0] == 200
        hostile_daemon.wait_job(identifier, {"CANCELED", "SUCCESSFUL", "FAILED"})


# --------------------------------------------------------------------------- credentials: tokens and Basic

#: Tokens of the second daemon's tokens-db (auth = on, trusted-proxies = 10.0.0.0/8: 127.0.0.1 is not trusted).
READ_ONLY_TOKEN, FULL_TOKEN = new_token(), new_token()
_RO = {"Authorization": f"Bearer {READ_ONLY_TOKEN}"}
_ALICE = "Basic " + base64.b64encode(b"alice:s3cret").decode()
# The same row shape as CASES; the answer to each is checked as there, but against that daemon.
AUTH_CASES = [
    ("token: unknown", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": f"Bearer {new_token()}"}),
    ("token: unknown, on a push", "POST", "/push-project.json", archive(offline_zip), 401,
     "authentication required", {"Authorization": f"Bearer {new_token()}"}),
    ("token: Bearer alone", "GET", "/status.json", None, 401, "authentication required", {"Authorization": "Bearer"}),
    ("token: two words", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": f"Bearer {FULL_TOKEN} {FULL_TOKEN}"}),
    ("token: a path", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": "Bearer ../../tokens.db"}),
    ("token: the stored hash instead", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": f"Bearer {token_hash(FULL_TOKEN)}"}),
    ("token: a 12 KiB header", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": "Bearer " + "A" * 12000}),
    ("token: percent-encoded NUL", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": f"Bearer {FULL_TOKEN}%00"}),
    ("token: a second scheme after a comma", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": f"Bearer {FULL_TOKEN}, {_ALICE}"}),
    ("token: in the query string", "GET", f"/status.json?access_token={FULL_TOKEN}", None, 401,
     "authentication required"),
    ("read-only token: schedule", "POST", "/schedule-job.json", schedule_form(), 403, "this token is read-only: ", _RO),
    ("read-only token: push", "POST", "/push-project.json", archive(offline_zip), 403, "this token is read-only: ", _RO),
    ("read-only token: POST without a body", "POST", "/cancel-job.json", None, 403, "this token is read-only: ", _RO),
    ("read-only token: lower-case scheme", "POST", "/cancel-job.json", form(id=UNKNOWN_JOB), 403,
     "this token is read-only: ", {"Authorization": f"bearer {READ_ONLY_TOKEN}"}),
    ("read-only token: a method override header", "POST", "/remove-project.json", form(name="offline"), 403,
     "this token is read-only: ", {**_RO, "X-HTTP-Method-Override": "GET"}),
    ("read-only token: DELETE", "DELETE", "/list-jobs.json", None, 403, "this token is read-only: ", _RO),
    ("Basic with X-Forwarded-Proto from an untrusted peer", "GET", "/status.json", None, 401,
     "authentication required", {"Authorization": _ALICE, "X-Forwarded-Proto": "https"}),
    ("a token as a Basic password", "GET", "/status.json", None, 401, "authentication required",
     {"Authorization": "Basic " + base64.b64encode(f"deploy:{FULL_TOKEN}".encode()).decode(),
      "X-Forwarded-Proto": "https"}),
]


@pytest.fixture(scope="module")
def token_daemon(tmp_path_factory):
    """A second daemon with auth = on, alice's password and tokens-db holding READ_ONLY_TOKEN and FULL_TOKEN."""
    workdir = tmp_path_factory.mktemp("hostile-tokens")
    (workdir / "auth.db").write_text("alice:s3cret\n")
    (workdir / "tokens.db").write_text(f"ci:read-only:{token_hash(READ_ONLY_TOKEN)}\n"
                                       f"deploy:full:{token_hash(FULL_TOKEN)}\n")
    daemon = DaemonProcess(workdir, CONF + "auth = on\nauth-db = auth.db\ntokens-db = tokens.db\n"
                           "trusted-proxies = 10.0.0.0/8\n").start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("case", list(_params(AUTH_CASES)))
def test_hostile_credentials_are_refused_cleanly(token_daemon, case):
    """Each forged, malformed or under-privileged credential gets its JSON 401 or 403, stores nothing and the
    daemon still answers a good token."""
    name, method, path, body, expected, fragment, headers = case
    before = snapshot(token_daemon.workdir)
    code, ctype, raw = send(token_daemon, method, path, body, headers=headers)
    assert code == expected, raw[:500]
    assert ctype == "application/json", (ctype, raw[:200])
    answer = json.loads(raw)
    assert set(answer) == {"status", "msg"} and answer["status"] == "error", answer
    assert fragment in answer["msg"], answer["msg"][:500]
    assert snapshot(token_daemon.workdir) == before
    code, _, raw = send(token_daemon, "GET", "/list-projects.json", headers={"Authorization": f"Bearer {FULL_TOKEN}"})
    assert code == 200 and json.loads(raw)["projects"] == [], raw[:200]
