"""Sphinx configuration for the Scrapy Do documentation.

Build with:  sphinx-build -W -b html docs docs/_build/html   (or `make docs`)
"""

import re
from pathlib import Path

_INIT = Path(__file__).resolve().parent.parent / "scrapy_do" / "__init__.py"
release = re.search(r'__version__\s*=\s*"([^"]+)"', _INIT.read_text(encoding="utf-8")).group(1)
version = ".".join(release.split(".")[:2])

project = "Scrapy Do"
author = "Scrapy Do contributors"
copyright = "Scrapy Do contributors"

extensions = []
templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
master_doc = "index"
language = "en"
highlight_language = "console"
pygments_style = "sphinx"

html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "Run Scrapy spiders now or on a schedule, behind a REST API.",
    "fixed_sidebar": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
