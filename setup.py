"""Packaging for Scrapy Do: the daemon (`scrapy-do`) and its client (`scrapy-do-cl`)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "scrapy_do" / "__init__.py").read_text()).group(1)

setup(
    name="scrapy-do",
    version=VERSION,
    description="A daemon that runs Scrapy spiders now or on a schedule, behind a REST API.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "bench"]) + ["twisted.plugins"],
    package_data={"scrapy_do": ["default.conf", "ui/*.*", "ui/*/*.*"], "twisted": ["plugins/scrapy_do_plugin.py"]},
    include_package_data=True,
    install_requires=[
        "twisted>=22.10",
        "klein>=21.8",
        "scrapy>=2.6",
        "schedule>=1.1",
        "python-dateutil>=2.8",
        "pyyaml>=5.4",
        "psutil>=5.8",
        "requests>=2.25",
        "tabulate>=0.8",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-twisted>=1.14", "treq>=22.1", "playwright>=1.40", "hypothesis>=6.100",
                 "schemathesis>=4.0"],
    },
    entry_points={
        "console_scripts": [
            "scrapy-do = scrapy_do.daemon:main",
            "scrapy-do-cl = scrapy_do.client.cli:main",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Framework :: Scrapy",
        "License :: OSI Approved :: BSD License",
        "Programming Language :: Python :: 3",
    ],
)
