"""Unit tests for the manual in docs/: it names every endpoint and every configuration key."""

import configparser
import re
from importlib import resources
from pathlib import Path

import pytest

from scrapy_do.web.openapi import openapi_document

DOCS = Path(__file__).resolve().parents[2] / "docs"

# A path in an inline literal (``GET /events``) or a URL (http://localhost:7654/status.json?x=1).
_LITERAL = re.compile(r"``(.+?)``")
_URL = re.compile(r"https?://[^\s/`'\"<>]+(/[^\s`'\"?#)<>]+)")


def documented_paths(text):
    """The URL paths the text names in inline literals and in URLs, without query strings."""
    found = set()
    for literal in _LITERAL.findall(text):
        found.update(word.split("?")[0] for word in literal.split() if word.startswith("/"))
    # A bare base URL (http://127.0.0.1:7654/) names the daemon, not the path "/".
    found.update(p for p in (m.rstrip(".,;:") for m in _URL.findall(text)) if len(p) > 1)
    return found


def is_documented(path, found):
    """Whether `path` is among `found`; a template such as /get-log/data/{filename} by its fixed prefix."""
    if "{" in path:
        prefix = path.split("{", 1)[0]
        return any(p.startswith(prefix) and len(p) > len(prefix) for p in found)
    return path in found


def config_defaults():
    """The sections and keys of the embedded default configuration, as the daemon reads it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(resources.files("scrapy_do").joinpath("default.conf").read_text(encoding="utf-8"))
    return {section: list(parser[section]) for section in parser.sections()}


def config_section_text(text, section):
    """The part of server-configuration.rst under the heading ``[section]`` section, up to the next heading."""
    heading = f"``[{section}]`` section"
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines)
                     if line.strip() == heading and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"})
    except StopIteration:
        return ""
    end = len(lines)
    for i in range(start + 2, len(lines) - 1):
        underline = lines[i + 1].strip()
        title = lines[i].strip()
        if title and underline and set(underline) <= set("-=~") and len(underline) >= len(title):
            end = i
            break
    return "\n".join(lines[start:end])


def test_documented_paths_reads_literals_and_urls():
    """Paths are taken from inline literals and URLs, without query strings or trailing punctuation."""
    text = ("Use ``GET /events`` or ``/get-log/data/<job-id>.out``, see http://localhost:7654/status.json. "
            "Also http://localhost:7654/list-spiders.json?project=q and ``/``; the base is http://h:1/.")
    assert documented_paths(text) == {"/events", "/get-log/data/<job-id>.out", "/status.json",
                                      "/list-spiders.json", "/"}


def test_bare_base_url_does_not_document_the_root():
    """A base URL such as http://127.0.0.1:7654/ does not count as documenting the path /."""
    assert not is_documented("/", documented_paths("The daemon is at http://127.0.0.1:7654/."))


def test_template_is_documented_by_its_fixed_prefix():
    """A path template counts as documented when a documented path starts with its fixed part."""
    assert is_documented("/get-log/data/{filename}", {"/get-log/data/<job-id>.err"})
    assert not is_documented("/get-log/data/{filename}", {"/get-log/data/", "/get-log"})


@pytest.mark.parametrize("path", sorted(openapi_document()["paths"]))
def test_every_openapi_path_is_in_the_rest_api_page(path):
    """Every path of the OpenAPI document is named in docs/rest-api.rst."""
    text = (DOCS / "rest-api.rst").read_text(encoding="utf-8")
    assert is_documented(path, documented_paths(text)), f"{path} is served but not in docs/rest-api.rst"


@pytest.mark.parametrize("section, key", [(s, k) for s, keys in config_defaults().items() for k in keys])
def test_every_config_key_is_in_its_section_of_the_configuration_page(section, key):
    """Every key of default.conf is described as **key** under its section in docs/server-configuration.rst."""
    text = (DOCS / "server-configuration.rst").read_text(encoding="utf-8")
    assert f"**{key}**" in config_section_text(text, section), \
        f"[{section}] {key} is in default.conf but not under ``[{section}]`` section in server-configuration.rst"


def test_timezone_is_described_in_the_scrapy_do_section():
    """The [scrapy-do] timezone key is described on the configuration page, even before default.conf has it."""
    text = (DOCS / "server-configuration.rst").read_text(encoding="utf-8")
    assert "**timezone**" in config_section_text(text, "scrapy-do")
