"""A pushed project's requirements.txt: checked, and reduced to what keys its environment.

Only requirement specifiers are taken (with extras, markers and `--hash`
options): the server, not the archive, decides where packages come from,
so index options, other files (`-r`, `-c`), editable installs, local paths
and direct URLs are refused, each with the line that holds it. Pure: no I/O.
"""

import hashlib
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from scrapy_do.errors import BadRequest

#: The largest requirements.txt taken.
MAX_SIZE = 64 << 10
_HASH = re.compile(r"^--hash=(sha256|sha384|sha512):[0-9a-fA-F]+$")


class InvalidRequirements(BadRequest):
    """The requirements.txt of a push cannot be used; the message names the line."""


def _logical_lines(text):
    """(first physical line number, text) of each logical line: continuations joined, comments cut."""
    number, pending, start = 0, "", None
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if start is None:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            yield start, pending.strip()
        pending, start = "", None
    if pending.strip():
        yield start, pending.strip()


def _refusal(line):
    """Why `line` is not a plain requirement, or None."""
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        return (f"the option {option} is not taken: the server decides where packages come from "
                "(see [scrapy-do] index-url, extra-index-url and find-links); list requirements only")
    if line.startswith((".", "/", "~")) or re.match(r"^[A-Za-z]:[\\/]", line):
        return "a local path is not taken: list the package by name and version, and publish it to the index"
    if "://" in line or line.lower().startswith("file:") or re.search(r"\s@\s|^[^\s;]+@", line):
        return "a direct URL is not taken: list the package by name and version from the server's index"
    return None


def parse(data):
    """The requirements in `data` (the file's bytes) as a tuple of normalised specifier lines.

    Raises InvalidRequirements naming the line for anything but specifiers.
    """
    if len(data) > MAX_SIZE:
        raise InvalidRequirements(f"requirements.txt is larger than {MAX_SIZE // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidRequirements(f"requirements.txt is not UTF-8 text (byte {e.start}); save it as UTF-8") \
            from None
    out = []
    for number, line in _logical_lines(text):
        words = line.split()
        hashes = [w for w in words[1:] if w.startswith("--hash")]
        spec = " ".join(w for w in words if not w.startswith("--hash"))
        refused = _refusal(line if not hashes else spec)
        if refused:
            raise InvalidRequirements(f"requirements.txt line {number}: {line[:120]!r}: {refused}")
        bad = [h for h in hashes if not _HASH.match(h)]
        if bad:
            raise InvalidRequirements(f"requirements.txt line {number}: {bad[0][:80]!r} is not a hash such as "
                                      "--hash=sha256:<hex digest>")
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as e:
            raise InvalidRequirements(f"requirements.txt line {number}: {line[:120]!r} is not a requirement "
                                      f"({e}); write it as name, name==1.2 or name>=1,<2") from None
        requirement.name = canonicalize_name(requirement.name)
        out.append(" ".join([str(requirement), *sorted(hashes)]))
    return tuple(out)


def environment_key(requirements, python_version, base):
    """What names an environment: its requirements, the Python it runs and the daemon's own packages
    (`base`, text listing them) it is laid over. Order and spelling of the file do not matter."""
    digest = hashlib.sha256()
    for part in (python_version, base, *sorted(requirements)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]
