"""Code that runs inside a crawl's process, not the daemon's."""
