"""Small helpers shared by the tests: fixture archives and Deferred results."""

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
OFFLINE = FIXTURES / "offline"


def zip_tree(root, name=None, stored=None):
    """Zip `root` as `<name>/...`, the layout pushes expect (caches left out).

    `stored` maps extra member names (below `<name>/`) to bytes added uncompressed.
    """
    root = Path(root)
    name = name or root.name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            zf.write(path, f"{name}/{path.relative_to(root)}")
        for member, data in (stored or {}).items():
            zf.writestr(zipfile.ZipInfo(f"{name}/{member}", (2026, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


@contextlib.contextmanager
def reachable_tempdir(prefix="scrapy-do-"):
    """A temporary folder for a daemon's store that its crawl user (`nobody` under root) can pass through:
    tempfile makes them 0700."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chmod(tmp, 0o711)
        yield tmp


def offline_zip():
    return zip_tree(OFFLINE)


def offline_copy(root, name="offline", spiders=None):
    """A copy of the offline project at `root/<name>` (caches left out) for a test to change, not the fixture;
    `name` is also its deploy name in scrapy.cfg. `spiders` maps module names to source put in offline/spiders
    (a None source is left out). Returns the copy's path."""
    tree = Path(root) / name
    shutil.copytree(OFFLINE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = tree / "scrapy.cfg"
    cfg.write_text(cfg.read_text().replace("project = offline", f"project = {name}"))
    for module, source in (spiders or {}).items():
        if source is not None:
            (tree / "offline" / "spiders" / f"{module}.py").write_text(source)
    return tree


def result_of(d):
    """The result of a Deferred that has already fired (raises its failure)."""
    box = []
    d.addBoth(box.append)
    assert box, "Deferred has not fired"
    result = box[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def multipart(fields):
    """Encode {name: str | (filename, bytes)} as multipart/form-data; return (body, content type)."""
    boundary = "scrapydo-test-boundary"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/zip\r\n\r\n")
            parts.append(head.encode() + data + b"\r\n")
        else:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            parts.append(head.encode() + str(value).encode() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def make_wheel(folder, name, version, requires=(), module_text=None):
    """A pure-Python wheel of `name` (module `name` with dashes as underscores) in `folder`, built by hand:
    environment tests install it with no index and no build tools. Its module says its VERSION."""
    import base64
    import hashlib
    import zipfile

    dist = name.replace("-", "_")
    path = Path(folder) / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": module_text if module_text is not None else f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: scrapy-do-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for member, text in files.items():
            data = text.encode()
            z.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def make_slow_sdist(folder, name, version, seconds):
    """A source distribution of `name` whose in-tree build backend sleeps `seconds` before it builds the wheel:
    an environment build that takes a while, with no index and no build tools."""
    import tarfile

    dist = name.replace("-", "_")
    base = f"{dist}-{version}"
    backend = f'''
import base64, hashlib, os, time, zipfile

NAME, DIST, VERSION = {name!r}, {dist!r}, {version!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep({seconds!r})
    info = f"{{DIST}}-{{VERSION}}.dist-info"
    files = {{f"{{DIST}}/__init__.py": f"VERSION = {{VERSION!r}}\\nBUILT_BY = {{os.getuid()}}\\n",
             f"{{info}}/METADATA": f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n",
             f"{{info}}/WHEEL": "Wheel-Version: 1.0\\nGenerator: slow\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}}
    wheel = f"{{DIST}}-{{VERSION}}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for member, text in files.items():
            data = text.encode()
            z.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{{member}},sha256={{digest}},{{len(data)}}")
        z.writestr(f"{{info}}/RECORD", "\\n".join([*record, f"{{info}}/RECORD,,"]) + "\\n")
    return wheel
'''
    members = {
        "pyproject.toml": f'[build-system]\nrequires = []\nbuild-backend = "slow_backend"\nbackend-path = ["."]\n'
                          f'[project]\nname = "{name}"\nversion = "{version}"\n',
        "slow_backend.py": backend,
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
