"""`python -m scrapy_do` starts the daemon, like the `scrapy-do` script."""

from scrapy_do.daemon import main

raise SystemExit(main())
