"""Unit tests for scrapy_do.projects.archives: unpacking pushed projects without trusting them."""

import io
import stat
import struct
import warnings
import zipfile

import pytest

from scrapy_do.projects import archives
from scrapy_do.projects.archives import Limits, check_name, extract
from scrapy_do.errors import BadArchive, BadRequest, TooLarge

# --------------------------------------------------------------------------- helpers


def cfg(project="proj"):
    """A typical scrapy.cfg naming `project`."""
    return f"[settings]\ndefault = {project}.settings\n\n[deploy]\nproject = {project}\n".encode()


PROJ = {
    "proj/scrapy.cfg": cfg(),
    "proj/proj/__init__.py": b"",
    "proj/proj/settings.py": b"BOT_NAME = 'proj'\n" * 20,
    "proj/proj/spiders/__init__.py": b"# spiders live here\n",
}
EXTRACTED = {name.split("/", 1)[1]: data for name, data in PROJ.items()}


def make_zip(files, *, compression=zipfile.ZIP_DEFLATED, attrs=None):
    """Zip `files` ({name: bytes} or [(name, bytes)], names kept verbatim); `attrs` sets external_attr."""
    attrs = attrs or {}
    items = files.items() if isinstance(files, dict) else files
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are deliberate in some tests
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in items:
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = compression
                default = (0o40755 << 16 | 0x10) if name.endswith("/") else (0o100644 << 16)
                info.external_attr = attrs.get(name, default)
                zf.writestr(info, data)
    return buf.getvalue()


# Header field offsets: (local file header, central directory header, struct format).
_FIELDS = {
    "flag_bits": (6, 8, "<H"),
    "compress_type": (8, 10, "<H"),
    "crc": (14, 16, "<I"),
    "compress_size": (18, 20, "<I"),
    "file_size": (22, 24, "<I"),
}


def _entry_offsets(data, name):
    """Offsets of `name`'s local header and central directory header in the zip `data`."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo(name)
    pos, central = zf.start_dir, None
    while data[pos:pos + 4] == b"PK\x01\x02":
        nlen, xlen, clen = struct.unpack("<HHH", data[pos + 28:pos + 34])
        if data[pos + 46:pos + 46 + nlen] == name.encode():
            central = pos
        pos += 46 + nlen + xlen + clen
    assert data[info.header_offset:info.header_offset + 4] == b"PK\x03\x04" and central is not None
    return info, info.header_offset, central


def patch_entry(data, name, **fields):
    """Rewrite header fields (see _FIELDS) of entry `name` in both its local and central headers."""
    _, local, central = _entry_offsets(data, name)
    buf = bytearray(data)
    for field, value in fields.items():
        local_off, central_off, fmt = _FIELDS[field]
        struct.pack_into(fmt, buf, local + local_off, value)
        struct.pack_into(fmt, buf, central + central_off, value)
    return bytes(buf)


def corrupt_data(data, name):
    """Invert every byte of entry `name`'s compressed data."""
    info, local, _ = _entry_offsets(data, name)
    nlen, xlen = struct.unpack("<HH", data[local + 26:local + 30])
    start = local + 30 + nlen + xlen
    buf = bytearray(data)
    for i in range(start, start + info.compress_size):
        buf[i] ^= 0xFF
    return bytes(buf)


def bomb_zip(size, name="proj/proj/bomb.bin", chunk=1 << 20):
    """The valid project plus `name`: `size` zero bytes, deflated by streaming in chunks."""
    buf = io.BytesIO(make_zip(PROJ))
    zero = bytes(chunk)
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "a") as zf:
        with zf.open(info, "w") as out:
            for _ in range(size // chunk):
                out.write(zero)
    return buf.getvalue()


def build(spec):
    """Turn a table entry into archive bytes: raw bytes, a callable, or a dict/list of members."""
    if isinstance(spec, bytes):
        return spec
    if callable(spec):
        return spec()
    return make_zip(spec)


def tree(root):
    """Every path under `root`, relative, with '/' separators."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


DEST = "store/trees/.incoming"


def run_extract(tmp_path, data, limits=None):
    """Extract into tmp_path/DEST and assert nothing appeared anywhere else under tmp_path."""
    (tmp_path / "store" / "trees").mkdir(parents=True)
    (tmp_path / "store" / "trees" / "other.1").mkdir()
    before = tree(tmp_path)
    try:
        return extract(data, str(tmp_path / DEST), limits or Limits())
    finally:
        outside = sorted(p for p in tree(tmp_path) - before if p != DEST and not p.startswith(DEST + "/"))
        assert outside == [], f"written outside dest: {outside}"


def files_in(root):
    """{relative path: bytes} of the regular files under `root`."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- valid archives


def test_extract_valid_project(tmp_path):
    """A zip of the project folder unpacks into dest with the top folder stripped and returns its name."""
    assert run_extract(tmp_path, make_zip(PROJ)) == "proj"
    dest = tmp_path / DEST
    assert files_in(dest) == EXTRACTED
    for path in dest.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644


VALID = [
    pytest.param(PROJ, "proj", EXTRACTED, id="plain"),
    pytest.param(lambda: make_zip(PROJ, compression=zipfile.ZIP_STORED), "proj", EXTRACTED, id="stored"),
    pytest.param(lambda: make_zip(PROJ, compression=zipfile.ZIP_BZIP2), "proj", EXTRACTED, id="bzip2"),
    pytest.param(lambda: make_zip(PROJ, compression=zipfile.ZIP_LZMA), "proj", EXTRACTED, id="lzma"),
    pytest.param({"proj/": b"", "proj/proj/": b"", "proj/proj/spiders/": b"", **PROJ}, "proj", EXTRACTED,
                 id="with-folder-entries"),
    pytest.param({"proj/scrapy.cfg": cfg(), "proj/empty/": b""}, "proj", {"scrapy.cfg": cfg()}, id="empty-folder"),
    pytest.param({name.replace("/", "\\"): data for name, data in PROJ.items()}, "proj", EXTRACTED,
                 id="windows-separators"),
    pytest.param({"proj/scrapy.cfg": b"[deploy]\nproject =   proj  \n"}, "proj",
                 {"scrapy.cfg": b"[deploy]\nproject =   proj  \n"}, id="spaces-around-name"),
    pytest.param({"my-proj.v2/scrapy.cfg": cfg("my-proj.v2"), "my-proj.v2/a.py": b"x"}, "my-proj.v2",
                 {"scrapy.cfg": cfg("my-proj.v2"), "a.py": b"x"}, id="dots-and-dashes"),
    pytest.param({"proj/./scrapy.cfg": cfg(), "proj/./a.py": b"x"}, "proj",
                 {"scrapy.cfg": cfg(), "a.py": b"x"}, id="dot-segments"),
    pytest.param(lambda: bomb_zip(4 << 20), "proj", None, id="4MiB-of-zeros-within-limits"),
]


@pytest.mark.parametrize("spec,name,expected", VALID)
def test_extract_valid_variants(tmp_path, spec, name, expected):
    """Common ways of zipping a project (compression, folder entries, Windows names) unpack the same."""
    assert run_extract(tmp_path, build(spec)) == name
    if expected is not None:
        assert files_in(tmp_path / DEST) == expected


def test_extract_leading_dot_slash(tmp_path):
    """Entries written as './proj/...' unpack like 'proj/...'."""
    data = make_zip({"./proj/scrapy.cfg": cfg(), "./proj/a.py": b"x"})
    assert run_extract(tmp_path, data) == "proj"
    assert files_in(tmp_path / DEST) == {"scrapy.cfg": cfg(), "a.py": b"x"}


# --------------------------------------------------------------------------- refused archives

BAD_NAMES = ["../x", "a/b", ".hidden", "-x", "a b", "x" * 129, "", "é", "a\\b"]

REFUSED = [
    # archive spec, limits, exception, fragment of the message
    pytest.param(b"", None, BadArchive, "the archive is empty", id="empty-bytes"),
    pytest.param(b"hello, I am not a zip", None, BadArchive, "not a valid zip file", id="not-a-zip"),
    pytest.param(b"PK\x03\x04" + b"\0" * 100, None, BadArchive, "not a valid zip file", id="zip-magic-only"),
    pytest.param(lambda: make_zip(PROJ)[:-30], None, BadArchive, "not a valid zip file", id="truncated"),
    pytest.param({}, None, BadArchive, "no project found", id="no-entries"),
    pytest.param({"proj/proj/__init__.py": b""}, None, BadArchive, "no project found", id="no-scrapy-cfg"),
    pytest.param({"proj/scrapy.cfg/": b"", "proj/a.py": b""}, None, BadArchive, "no project found", id="cfg-is-folder"),
    pytest.param({"a/proj/scrapy.cfg": cfg()}, None, BadArchive, "no project found", id="cfg-too-deep"),
    pytest.param({"scrapy.cfg": cfg(), "proj/__init__.py": b""}, None, BadArchive,
                 "scrapy.cfg is at the top level: zip the project folder itself, not its contents", id="cfg-at-top"),
    pytest.param({**PROJ, "other/x.py": b""}, None, BadArchive,
                 "the archive holds more than one top folder (other, proj)", id="two-top-folders"),
    pytest.param({**PROJ, "other/scrapy.cfg": cfg("other")}, None, BadArchive,
                 "more than one top folder (other, proj)", id="two-projects"),
    pytest.param({**PROJ, "README.md": b"hi"}, None, BadArchive, "more than one top folder (README.md, proj)",
                 id="stray-top-file"),
    pytest.param({"proj/scrapy.cfg": cfg("other")}, None, BadArchive,
                 "scrapy.cfg names the project 'other' but the top folder is 'proj'", id="name-mismatch"),
    pytest.param({"proj/scrapy.cfg": b"[settings]\ndefault = proj.settings\n"}, None, BadArchive,
                 "cannot read the project name from scrapy.cfg (No section: 'deploy')", id="no-deploy-section"),
    pytest.param({"proj/scrapy.cfg": b"[deploy]\nurl = http://localhost:6800/\n"}, None, BadArchive,
                 "(No option 'project' in section: 'deploy')", id="no-project-key"),
    pytest.param({"proj/scrapy.cfg": b"project = proj\n"}, None, BadArchive,
                 "cannot read the project name from scrapy.cfg (File contains no section headers.", id="cfg-not-ini"),
    pytest.param({"proj/scrapy.cfg": b"[deploy]\nproject = caf\xe9\n"}, None, BadArchive,
                 "cannot read the project name from scrapy.cfg", id="cfg-not-utf8"),
    pytest.param({"proj/scrapy.cfg": cfg() + b"#" * (1 << 20)}, None, BadArchive,
                 "scrapy.cfg is larger than 1 MiB", id="cfg-huge"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/scrapy.cfg", crc=0), None, BadArchive,
                 "cannot read the project name from scrapy.cfg (Bad CRC-32", id="cfg-bad-crc"),
    *[pytest.param({"proj/scrapy.cfg": cfg(name)}, None, BadArchive, f"project name {name!r} is not allowed",
                   id=f"bad-name-{name[:10]!r}") for name in BAD_NAMES],
    pytest.param({**PROJ, "proj/../../evil.py": b"x"}, None, BadArchive,
                 "archive entry 'proj/../../evil.py' points outside the project ('..')", id="zip-slip"),
    pytest.param({**PROJ, "../evil.py": b"x"}, None, BadArchive, "points outside the project", id="zip-slip-top"),
    pytest.param({**PROJ, "proj/proj/../../../evil.py": b"x"}, None, BadArchive, "points outside the project",
                 id="zip-slip-deep"),
    pytest.param({**PROJ, "proj\\..\\..\\evil.py": b"x"}, None, BadArchive, "points outside the project",
                 id="zip-slip-backslash"),
    pytest.param({**PROJ, "/etc/evil": b"x"}, None, BadArchive,
                 "archive entry '/etc/evil' has an absolute path", id="absolute"),
    pytest.param({**PROJ, "/proj/proj/x.py": b"x"}, None, BadArchive, "has an absolute path", id="absolute-in-project"),
    pytest.param({**PROJ, "C:/evil.py": b"x"}, None, BadArchive, "has an absolute path", id="drive-letter"),
    pytest.param({**PROJ, "\\\\server\\share\\evil.py": b"x"}, None, BadArchive, "has an absolute path", id="unc-path"),
    pytest.param(lambda: make_zip({**PROJ, "proj/proj/link.py": b"/etc/passwd"},
                                  attrs={"proj/proj/link.py": 0o120777 << 16}), None, BadArchive,
                 "archive entry 'proj/proj/link.py' is a symbolic link; links are not accepted", id="symlink"),
    pytest.param(lambda: make_zip({**PROJ, "proj/up": b".."}, attrs={"proj/up": 0o120777 << 16}), None, BadArchive,
                 "is a symbolic link", id="symlink-to-parent"),
    pytest.param(lambda: make_zip({**PROJ, "proj/fifo": b""}, attrs={"proj/fifo": stat.S_IFIFO << 16 | 0o644 << 16}),
                 None, BadArchive, "archive entry 'proj/fifo' is not a regular file or folder", id="fifo"),
    pytest.param(lambda: make_zip({**PROJ, "proj/dev": b""}, attrs={"proj/dev": stat.S_IFCHR << 16 | 0o644 << 16}),
                 None, BadArchive, "is not a regular file or folder", id="char-device"),
    pytest.param({**PROJ, "proj/extra.py": b""}, Limits(max_files=4), TooLarge,
                 "the archive has 5 entries, more than the limit of 4 (max-archive-files)", id="too-many-files"),
    pytest.param({**PROJ, "proj/big.bin": bytes(5000)}, Limits(max_unpacked_size=4096), TooLarge,
                 "more than the limit of 4096 (max-unpacked-size)", id="declared-size-over-limit"),
    pytest.param([*PROJ.items(), ("proj/proj/settings.py", b"OTHER = 1\n")], None, BadArchive,
                 "archive entry 'proj/proj/settings.py' appears twice", id="duplicate-entry"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/proj/settings.py", flag_bits=0x1), None, BadArchive,
                 "archive entry 'proj/proj/settings.py' cannot be unpacked", id="encrypted-entry"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/proj/settings.py", compress_type=99), None, BadArchive,
                 "cannot be unpacked (That compression method is not supported)", id="unknown-compression"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/proj/settings.py", crc=0), None, BadArchive,
                 "cannot be unpacked (Bad CRC-32", id="bad-crc"),
    pytest.param(lambda: corrupt_data(make_zip(PROJ), "proj/proj/settings.py"), None, BadArchive,
                 "archive entry 'proj/proj/settings.py' cannot be unpacked (", id="corrupt-deflate-data"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/proj/settings.py", file_size=10), None, BadArchive,
                 "cannot be unpacked (Bad CRC-32", id="lying-size-header"),
]


@pytest.mark.parametrize("spec,limits,exc,fragment", REFUSED)
def test_refused_archive(tmp_path, spec, limits, exc, fragment):
    """A bad or hostile archive raises BadArchive/TooLarge naming the problem and writes nothing outside dest."""
    with pytest.raises(exc) as info:
        run_extract(tmp_path, build(spec), limits)
    assert fragment in str(info.value)
    assert not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("exc", [BadArchive, TooLarge])
def test_archive_errors_are_bad_requests(exc):
    """Archive errors are BadRequests, so the web layer answers with a 4xx."""
    assert issubclass(exc, BadRequest)


CRASHES = [
    pytest.param({"proj/scrapy.cfg": cfg(), "proj/a": b"x", "proj/a/b": b"y"}, id="file-then-file-inside-it"),
    pytest.param({"proj/scrapy.cfg": cfg(), "proj/a": b"x", "proj/a/": b""}, id="file-then-folder-same-name"),
    pytest.param({"proj/scrapy.cfg": cfg(), "proj/" + "x" * 300: b"x"}, id="name-too-long-for-filesystem"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/scrapy.cfg", flag_bits=0x1), id="encrypted-scrapy-cfg"),
    pytest.param(lambda: patch_entry(make_zip(PROJ), "proj/scrapy.cfg", compress_type=99), id="unknown-compression-cfg"),
    pytest.param(lambda: corrupt_data(make_zip(PROJ), "proj/scrapy.cfg"), id="corrupt-deflate-cfg"),
]


@pytest.mark.parametrize("spec", CRASHES)
def test_hostile_archive_does_not_crash(tmp_path, spec):
    """Archives whose entries clash on disk or whose scrapy.cfg cannot be decoded raise BadArchive, not a raw error."""
    with pytest.raises(BadArchive):
        run_extract(tmp_path, build(spec))


def test_duplicate_scrapy_cfg_message(tmp_path):
    """Two scrapy.cfg entries with the same name are reported as a duplicate entry, not as two folders."""
    data = make_zip([*PROJ.items(), ("proj/scrapy.cfg", cfg())])
    with pytest.raises(BadArchive) as info:
        run_extract(tmp_path, data)
    assert "appears twice" in str(info.value)


# --------------------------------------------------------------------------- zip bombs


@pytest.fixture(scope="module")
def bomb():
    """64 MiB of zeros that deflate to well under 1% of that."""
    data = bomb_zip(64 << 20)
    assert len(data) < (64 << 20) // 100
    return data


def test_zip_bomb_refused_by_declared_size(tmp_path, bomb):
    """A highly compressed entry bigger than max-unpacked-size is refused before anything is written."""
    with pytest.raises(TooLarge) as info:
        run_extract(tmp_path, bomb, Limits(max_unpacked_size=16 << 20))
    assert "more than the limit of 16777216 (max-unpacked-size)" in str(info.value)
    assert not (tmp_path / DEST).exists()


def test_zip_bomb_with_lying_header(tmp_path, bomb):
    """A bomb whose header claims a tiny size is stopped: at most the claimed bytes are written, then BadArchive."""
    data = patch_entry(bomb, "proj/proj/bomb.bin", file_size=1000)
    with pytest.raises(BadArchive) as info:
        run_extract(tmp_path, data, Limits(max_unpacked_size=16 << 20))
    assert "archive entry 'proj/proj/bomb.bin' cannot be unpacked (Bad CRC-32" in str(info.value)
    written = tmp_path / DEST / "proj" / "bomb.bin"
    assert not written.exists() or written.stat().st_size <= 1000


def test_unpacked_bytes_are_counted_while_writing(tmp_path, bomb, monkeypatch):
    """Even if the directory check were fooled, extraction stops once real bytes exceed the limit."""
    real_inspect = archives.inspect
    monkeypatch.setattr(archives, "inspect", lambda zf, limits: real_inspect(zf, Limits(max_files=limits.max_files)))
    with pytest.raises(TooLarge) as info:
        run_extract(tmp_path, bomb, Limits(max_unpacked_size=1 << 20))
    assert str(info.value) == "the archive unpacks to more than 1048576 bytes (max-unpacked-size)"
    assert sum(len(b) for b in files_in(tmp_path / DEST).values()) <= 1 << 20


def test_total_of_many_entries_counts(tmp_path):
    """The unpacked-size limit applies to the sum of entries, not to each one."""
    files = {**PROJ, **{f"proj/data/{i}.bin": bytes(1000) for i in range(10)}}
    with pytest.raises(TooLarge) as info:
        run_extract(tmp_path, make_zip(files), Limits(max_unpacked_size=9000))
    assert "more than the limit of 9000 (max-unpacked-size)" in str(info.value)


# --------------------------------------------------------------------------- names

GOOD_NAMES = ["proj", "a", "_x", "9lives", "my_proj", "Proj2", "a.b-c_d", "x..y", "x" * 128]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_check_name_accepts(name):
    """Letters, digits, '_', '-' and '.' (not leading '.' or '-'), up to 128 characters, are accepted as is."""
    assert check_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES + [".", "..", "a:b", "a\tb", "a\0b", "x" * 1000, "proj/", "ü"])
def test_check_name_rejects(name):
    """Anything that is not a plain, safe directory name raises BadArchive explaining the rule."""
    with pytest.raises(BadArchive) as info:
        check_name(name)
    assert str(info.value).startswith(f"project name {name!r} is not allowed: use letters, digits")
    assert "at most 128 characters" in str(info.value)


@pytest.mark.parametrize("name", ["proj\n"])
def test_check_name_rejects_trailing_newline(name):
    """A name ending in a newline is refused like any other control character."""
    with pytest.raises(BadArchive):
        check_name(name)
