"""A project's data directory, as the API shows it: the files its crawls wrote, read without trusting them.

The crawl user owns the directory and may put anything there, symlinks to
`/etc/shadow` included. Listing skips everything but regular files and plain
directories; reading walks the path one component at a time with
O_NOFOLLOW (openat), so no symlink is followed at any depth, not even one
swapped in between a check and the open.
"""

import errno
import os
import stat

#: Listing stops after this many files (a deep HTTP cache has thousands).
MAX_LISTED = 1000


def parts_of(relative):
    """The components of a relative path as the API gives it; ValueError for anything that could escape."""
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise ValueError(relative)
    return parts


def open_beneath(root, relative):
    """A binary file object of the regular file `relative` below `root`; OSError (ENOENT) for anything else."""
    parts = parts_of(relative)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    except OSError as e:
        # ELOOP (a symlink), ENOTDIR (a symlink or file where a folder should be): as if it were not there.
        raise FileNotFoundError(errno.ENOENT, f"no file {relative!r} ({e.strerror})") from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, f"{relative!r} is not a regular file")
    return os.fdopen(fd, "rb")


def list_files(root, limit=MAX_LISTED):
    """([{path, size, modified}], truncated): the regular files below `root`, sorted by path, symlinks left out."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            found.append({"path": os.path.relpath(path, root).replace(os.sep, "/"), "size": info.st_size,
                          "modified": info.st_mtime})
            if len(found) > limit:
                return found[:limit], True
    return found, False
