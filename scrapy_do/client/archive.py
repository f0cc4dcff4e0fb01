"""Building the archive `push-project` sends, the way 0.5.0 did, minus the junk.

Files are `scrapy.cfg` plus those matching `[deploy] glob` (default `**/*`:
what `zip -r` would take, so requirements.txt and data files such as
resources/authors.csv travel; 0.5.0 took only `**/*.py`), stored under a top
folder named after `[deploy] project`. Version-control folders, virtualenvs,
caches (Scrapy's `.scrapy` too) and compiled files are never included, even
if a glob matches inside them.
"""

import configparser
import io
import zipfile
from pathlib import Path

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv", "venv", "env", ".env",
             "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", ".idea",
             ".vscode", ".scrapy"}
SKIP_SUFFIXES = (".pyc", ".pyo")
SKIP_NAMES = {".DS_Store"}
DEFAULT_GLOB = "**/*"


class ArchiveError(Exception):
    pass


def project_settings(root):
    """(name, globs) from `root/scrapy.cfg`."""
    cfg = Path(root) / "scrapy.cfg"
    if not cfg.is_file():
        raise ArchiveError(f"{cfg} not found; run push-project in a Scrapy project folder or give --project-path")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(cfg, encoding="utf-8")
        name = parser.get("deploy", "project").strip()
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ArchiveError(f"{cfg} needs a [deploy] section with 'project = NAME' ({str(e).splitlines()[0]})") \
            from None
    globs = parser.get("deploy", "glob", fallback=DEFAULT_GLOB).split()
    return name, globs


def _skipped(relative, root):
    if relative.suffix in SKIP_SUFFIXES or relative.name in SKIP_NAMES:
        return True
    for i, part in enumerate(relative.parts[:-1]):
        if part in SKIP_DIRS or part.endswith(".egg-info"):
            return True
        if (root.joinpath(*relative.parts[: i + 1]) / "pyvenv.cfg").exists():
            return True
    return False


def select_files(root, globs):
    """Relative paths to pack, sorted, scrapy.cfg first."""
    root = Path(root)
    chosen = {Path("scrapy.cfg")}
    for pattern in globs:
        for path in root.glob(pattern):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(root)
                if not _skipped(relative, root):
                    chosen.add(relative)
    return [Path("scrapy.cfg")] + sorted(chosen - {Path("scrapy.cfg")})


def build_archive(root):
    """Zip the project at `root`; return (name, zip bytes)."""
    root = Path(root).resolve()
    name, globs = project_settings(root)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for relative in select_files(root, globs):
            zf.write(root / relative, f"{name}/{relative.as_posix()}")
    return name, buf.getvalue()
