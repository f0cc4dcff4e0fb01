"""Zip packages of a folder for a cluster's runtime environment, named by their content.

The same folder always makes the same bytes (sorted entries, fixed times and
modes), so a package is uploaded once and every crawl of a project version,
or a restarted daemon, finds it on the head by name. Blocking: the Ray
backend calls these in a thread.
"""

import hashlib
import io
import os
import zipfile

#: Ray's own prefix for uploaded packages (`gcs://_ray_pkg_<hash>.zip`).
PREFIX = "_ray_pkg_"
SKIP_DIRS = {"__pycache__", ".git"}
_TIME = (1980, 1, 1, 0, 0, 0)


def _entries(root, under):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            yield path, os.path.join(under, os.path.relpath(path, root)) if under else os.path.relpath(path, root)


def zip_folder(root, under=""):
    """The folder's files as zip bytes, inside `under/` when given (a Python package keeps its name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in _entries(str(root), under):
            info = zipfile.ZipInfo(name, _TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                archive.writestr(info, f.read())
    return buffer.getvalue()


def package(root, under=""):
    """(uri, zip bytes) of a folder: its name is the hash of its bytes."""
    data = zip_folder(root, under)
    return f"gcs://{PREFIX}{hashlib.sha1(data).hexdigest()}.zip", data
