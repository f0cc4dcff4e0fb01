"""One exception hierarchy for everything a user can get wrong or run into.

The web layer maps each class to an HTTP status in one table; the engine only
raises these, so the same message reaches a Python caller, the CLI and curl.
"""


class ScrapyDoError(Exception):
    """Base of every error meant for the user; `str(e)` says what to fix."""

    @property
    def msg(self):
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(ScrapyDoError):
    """A configuration value is missing or wrong; start-up stops."""

    def __init__(self, section, key, problem):
        where = f"[{section}] {key}" if section else key
        super().__init__(f"{where}: {problem}")
        self.section = section
        self.key = key


class StartupError(ScrapyDoError):
    """Something other than configuration keeps the daemon from starting."""

    #: The daemon's exit status; systemd does not restart on 2 (nothing would change).
    exit_status = 1


class UnusableStore(StartupError):
    """The project store or its database cannot be used as it is: a restart would not help."""

    exit_status = 2


class BadRequest(ScrapyDoError):
    """The request itself is malformed: a parameter is missing or invalid."""


class InvalidSpec(BadRequest, ValueError):
    """A scheduling spec is neither `now`, the `every ...` grammar nor a five-field cron expression."""


class InvalidPayload(BadRequest):
    """A job payload is not a JSON object."""


class BadArchive(BadRequest):
    """A pushed archive is not a usable Scrapy project (or is hostile)."""


class TooLarge(BadRequest):
    """An upload or an archive's contents exceed a configured limit."""


class NotFound(ScrapyDoError):
    """An unknown project, spider, job or log."""


class Forbidden(ScrapyDoError):
    """The request carries no right to do this (a crawl's report with a wrong token)."""


class Conflict(ScrapyDoError):
    """The request is valid but the current state forbids it."""


class LaunchError(ScrapyDoError):
    """A crawl process could not be started.

    `transient` errors (out of descriptors, processes or memory) may pass:
    the job waits and is tried again instead of failing.
    """

    def __init__(self, msg, transient=False):
        super().__init__(msg)
        self.transient = transient


class Starting(ScrapyDoError):
    """The daemon is still recovering from its previous run; ask again in a moment."""


class StorageFull(ScrapyDoError):
    """The disk holding the store is full: nothing was written; retry once space is freed."""
