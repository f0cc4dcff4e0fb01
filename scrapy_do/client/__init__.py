"""The command-line client, `scrapy-do-cl`."""
