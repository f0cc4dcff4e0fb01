"""What push-project packs: scrapy.cfg plus the deploy glob, never VCS, venvs or caches."""

import io
import zipfile

import pytest

from scrapy_do.client.archive import ArchiveError, build_archive


def make_project(root, cfg="[deploy]\nproject = demo\n"):
    files = {
        "scrapy.cfg": cfg,
        "demo/__init__.py": "",
        "demo/spiders/s.py": "x = 1\n",
        "demo/data.json": "{}",
        ".git/hooks/pre-commit.py": "",
        ".venv/lib/site.py": "",
        "myenv/pyvenv.cfg": "",
        "myenv/lib/mod.py": "",
        "demo/__pycache__/s.cpython-311.py": "",
        "build/lib/demo.py": "",
        "demo.egg-info/x.py": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(data):
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_default_glob_packs_what_zip_r_would_under_project_name(tmp_path):
    """The default glob takes every file (data files, requirements.txt), under a folder named after the project;
    version control, virtualenvs, caches (Scrapy's .scrapy too) and compiled files stay out."""
    root = make_project(tmp_path / "checkout")
    (root / "requirements.txt").write_text("dateparser\n")
    (root / ".scrapy" / "httpcache").mkdir(parents=True)
    (root / ".scrapy" / "httpcache" / "page").write_text("cached")
    (root / "demo" / "spiders" / "s.pyc").write_bytes(b"\0")
    name, data = build_archive(root)
    assert name == "demo"
    assert names(data) == ["demo/scrapy.cfg", "demo/demo/__init__.py", "demo/demo/data.json",
                           "demo/demo/spiders/s.py", "demo/requirements.txt"]


def test_custom_glob_adds_data_files(tmp_path):
    """`[deploy] glob` chooses the files, and junk folders stay out even when matched."""
    root = make_project(tmp_path, "[deploy]\nproject = demo\nglob = **/*.py **/*.json\n")
    assert "demo/demo/data.json" in names(build_archive(root)[1])
    assert not [n for n in names(build_archive(root)[1]) if ".git" in n or "env" in n or "build" in n]


@pytest.mark.parametrize("cfg, text", [(None, "scrapy.cfg not found"),
                                       ("[settings]\ndefault = x\n", "[deploy]"),
                                       ("garbage", "[deploy]")])
def test_missing_or_bad_scrapy_cfg_is_a_clear_error(tmp_path, cfg, text):
    """Without a usable scrapy.cfg the client says what is missing."""
    if cfg is not None:
        (tmp_path / "scrapy.cfg").write_text(cfg)
    with pytest.raises(ArchiveError, match=text.replace("[", r"\[").replace("]", r"\]")):
        build_archive(tmp_path)
