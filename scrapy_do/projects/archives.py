"""Validate and unpack pushed project archives without trusting them.

Everything here is synchronous and reactor-free; `projects.py` runs
`extract` in a thread. The checks read the zip's directory first (cheap),
then count real bytes while writing, because sizes in a zip header can lie.
"""

import configparser
import io
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass

from scrapy_do.errors import BadArchive, TooLarge

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Limits:
    max_unpacked_size: int = 512 << 20
    max_files: int = 10000


def check_name(name):
    """Project names become directory names: letters, digits, `_ - .` only."""
    if not name or not NAME.fullmatch(name) or len(name) > 128:
        raise BadArchive(f"project name {name!r} is not allowed: use letters, digits, '_', '-' and '.' "
                         "(not starting with '.' or '-'), at most 128 characters")
    return name


def _member_parts(info):
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BadArchive(f"archive entry {info.filename!r} has an absolute path; zip the project folder with relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadArchive(f"archive entry {info.filename!r} points outside the project ('..'); remove it")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BadArchive(f"archive entry {info.filename!r} is a symbolic link; links are not accepted")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        raise BadArchive(f"archive entry {info.filename!r} is not a regular file or folder")
    return parts


def open_archive(data):
    """A ZipFile over `data`, or BadArchive saying why it is not one."""
    if not data:
        raise BadArchive("the archive is empty; send a zip of your project folder in the 'archive' field")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as e:
        raise BadArchive(f"the archive is not a valid zip file ({e}); create it with e.g. 'zip -r proj.zip proj'") from None


def inspect(zf, limits):
    """Check the directory of `zf`; return (project name, [(info, relative parts)])."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise TooLarge(f"the archive has {len(infos)} entries, more than the limit of {limits.max_files} "
                       "(max-archive-files)")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_unpacked_size:
        raise TooLarge(f"the archive would unpack to {declared} bytes, more than the limit of "
                       f"{limits.max_unpacked_size} (max-unpacked-size)")
    members = [(i, _member_parts(i)) for i in infos]
    members = [(i, p) for i, p in members if p]
    _check_paths(members)
    tops = {p[0] for _, p in members}
    cfgs = [i for i, p in members if len(p) == 2 and p[1] == "scrapy.cfg" and not i.is_dir()]
    if not cfgs:
        hint = " (scrapy.cfg is at the top level: zip the project folder itself, not its contents)" \
            if any(p == ["scrapy.cfg"] for _, p in members) else ""
        raise BadArchive("no project found: the archive needs a top folder named like the project holding "
                         f"scrapy.cfg{hint}")
    if len(cfgs) > 1 or len(tops) > 1:
        raise BadArchive("the archive holds more than one top folder (" + ", ".join(sorted(tops))[:200]
                         + "); push one project per archive")
    name = _project_name(zf, cfgs[0])
    top = next(p for i, p in members if i is cfgs[0])[0]
    if top != name:
        raise BadArchive(f"scrapy.cfg names the project {name!r} but the top folder is {top!r}; "
                         "rename the folder or fix [deploy] project")
    return name, [(i, p[1:]) for i, p in members if len(p) > 1]


def _check_paths(members):
    """Refuse entries that would collide on disk, before anything is written."""
    files, dirs = set(), set()
    for info, parts in members:
        if any(len(p.encode()) > 255 for p in parts) or len(parts) > 64:
            raise BadArchive(f"archive entry {info.filename[:80]!r}... has a name or depth the file system "
                             "cannot hold")
        path = tuple(parts)
        if info.is_dir():
            if path in files:
                raise BadArchive(f"archive entry {info.filename!r} is both a file and a folder")
            dirs.add(path)
            continue
        if path in files:
            raise BadArchive(f"archive entry {info.filename!r} appears twice")
        if path in dirs:
            raise BadArchive(f"archive entry {info.filename!r} is both a file and a folder")
        files.add(path)
        dirs.update(path[:i] for i in range(1, len(path)))
    clash = files & dirs
    if clash:
        raise BadArchive(f"archive entry {'/'.join(sorted(clash)[0])!r} is both a file and a folder")


def _project_name(zf, cfg_info):
    if cfg_info.file_size > 1 << 20:
        raise BadArchive("scrapy.cfg is larger than 1 MiB; that is not a Scrapy config")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(zf.read(cfg_info).decode("utf-8"))
        name = parser.get("deploy", "project")
    except (configparser.Error, UnicodeDecodeError, zipfile.BadZipFile, OSError, ValueError, RuntimeError,
            NotImplementedError, EOFError, zlib.error) as e:
        raise BadArchive(f"cannot read the project name from scrapy.cfg ({str(e).splitlines()[0]}); "
                         "it needs a [deploy] section with 'project = NAME'") from None
    return check_name(name.strip())


def extract(data, dest, limits):
    """Unpack the project folder of `data` into the new directory `dest`.

    Returns the project name. Raises BadArchive/TooLarge; on error `dest`
    may hold a partial tree, which the caller removes.
    """
    with open_archive(data) as zf:
        return extract_zip(zf, dest, limits)


def extract_zip(zf, dest, limits):
    """Unpack an open ZipFile's project folder into `dest` (see `extract`); return the project name."""
    name, members = inspect(zf, limits)
    os.makedirs(dest)
    written = 0
    root = os.path.realpath(dest)
    for info, parts in members:
        target = os.path.join(root, *parts)
        if not os.path.realpath(target).startswith(root + os.sep):
            raise BadArchive(f"archive entry {info.filename!r} points outside the project")
        try:
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > limits.max_unpacked_size:
                        raise TooLarge(f"the archive unpacks to more than {limits.max_unpacked_size} bytes "
                                       "(max-unpacked-size)")
                    out.write(chunk)
        except OSError as e:
            raise BadArchive(f"archive entry {info.filename!r} cannot be written ({e.strerror})") from None
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError, zlib.error) as e:
            # ValueError covers UnicodeDecodeError from a local header's name.
            raise BadArchive(f"archive entry {info.filename!r} cannot be unpacked ({e})") from None
        os.chmod(target, 0o644)
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o755)  # readable by the crawl user whatever the daemon's umask
    return name

