"""Contracts between the daemon's parts; each has more than one implementation."""

from zope.interface import Attribute, Interface


class IJobStore(Interface):
    """Durable record of projects, jobs and counters.

    Calls are synchronous and cheap (an indexed SQLite query at most), so the
    engine calls them on the reactor thread.
    """

    def add_job(job):
        """Insert a new job; its identifier must be new."""

    def update_job(job):
        """Replace the stored job with the same identifier."""

    def get_job(identifier):
        """The job with this identifier, or None."""

    def list_jobs(statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False):
        """Jobs filtered by status set, project and spider; newest first by default."""

    def list_jobs_json(statuses=None, project=None, spider=None, limit=None, offset=0):
        """Like list_jobs (newest first), each job as the JSON text of `Job.to_dict()`."""

    def count_jobs(statuses=None, project=None, spider=None):
        """How many jobs match, without loading them."""

    def purge_completed(keep):
        """Delete all but the `keep` newest finished jobs; return the deleted identifiers."""

    def save_project(project):
        """Insert or replace a project record."""

    def get_project(name):
        """The project with this name, or None."""

    def list_projects():
        """All projects, by name."""

    def remove_project(name):
        """Delete a project record."""

    def counters():
        """A dict of lifetime counters: run, successful, failed, canceled."""

    def bump(counter):
        """Add one to a lifetime counter."""

    def close():
        """Release the underlying resources."""


class ILauncher(Interface):
    """Starts crawl processes; the controller decides what and when."""

    def launch(request):
        """Start the crawl described by a `LaunchRequest`; return an `IRunningCrawl`."""


class IRunningCrawl(Interface):
    pid = Attribute("Process id of the crawl.")
    created = Attribute("The process's creation time (epoch seconds), to recognise it after a crash.")
    ended = Attribute("Deferred firing with the exit code (negative signal number when killed).")

    def stop(grace):
        """Ask the crawl to stop (SIGTERM), and SIGKILL it if still alive after `grace` seconds."""
