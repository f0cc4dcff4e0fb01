"""Contracts between the daemon's parts; each has more than one implementation."""

from zope.interface import Attribute, Interface


class IJobStore(Interface):
    """Durable record of runs, schedules, projects and counters.

    Calls are synchronous and cheap (an indexed SQLite query at most), so the
    engine calls them on the reactor thread. A "job" is a Run or a Schedule.
    """

    generation = Attribute("A value that changes with every write, so a reader may keep what it read while it "
                           "holds; None when the store does not say (nothing read is kept then).")

    def open():
        """Open (and migrate) the storage; return self. Nothing is touched before."""

    def add_job(job):
        """Insert a new run or schedule; its identifier must be new."""

    def add_jobs(jobs):
        """`add_job` for each of `jobs`, all or none (one transaction)."""

    def update_job(job):
        """Replace the stored run or schedule with the same identifier."""

    def update_jobs(jobs):
        """`update_job` for each of `jobs`, all or none (one transaction)."""

    def get_job(identifier):
        """The run or schedule with this identifier, or None."""

    def record(job, *counters):
        """Update a job and bump lifetime counters together: all of it is written, or none."""

    def schedule_named(name):
        """The SCHEDULED schedule with this name, or None."""

    def has_pending(schedule_id):
        """Whether a PENDING run of this schedule is waiting."""

    def list_jobs(statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False, parent=None):
        """Runs and schedules filtered by status set, project, spider and parent schedule (runs only);
        newest first by default."""

    def list_jobs_json(statuses=None, project=None, spider=None, limit=None, offset=0, parent=None):
        """Like list_jobs (newest first), each as the JSON text of `records.to_record`."""

    def pending_queue(limit, exclude=(), skip=()):
        """The first `limit` PENDING runs in the order they start: highest priority first, then oldest;
        none of the (project, spider) pairs in `exclude` nor the identifiers in `skip`."""

    def count_jobs(statuses=None, project=None, spider=None, parent=None):
        """How many match, without loading them."""

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
    """Starts crawls somewhere (a local process today, a cluster later); the controller decides what and when."""

    def launch(spec):
        """Start the crawl a `LaunchSpec` describes; a Deferred firing with an `IRun` (or failing with LaunchError).

        Either the crawl runs and the IRun is returned, or nothing runs.
        """

    def reattach(handle, logs):
        """A Deferred firing with an `IRun` for a crawl a previous daemon started (its persisted `handle`;
        `logs`: the paths of its .out and .err), or None when it cannot be followed any more; then nothing of
        it is left running."""

    def collect_garbage(finished):
        """Remove what the launcher keeps for jobs that ended while no daemon watched (`finished(job_id)`
        says which ids those are)."""


class IRun(Interface):
    """One crawl started by a launcher."""

    handle = Attribute("A string to persist, from which `ILauncher.reattach` finds the crawl again.")
    ended = Attribute("Deferred firing with the exit code (a negative signal number when killed).")
    detached = Attribute("True when the crawl goes on without the daemon (on a cluster): a daemon that stops "
                         "leaves it running and the next one re-attaches; False: it stops with the daemon.")

    def detach():
        """The daemon stops and leaves a detached crawl running: stop following it here."""

    def stop(grace):
        """Ask the crawl to stop, and force it after `grace` seconds; returns `ended`."""

    def logs():
        """The run's `ILogSource`."""


class IRemoteRun(IRun):
    """A crawl on another machine: nothing here reads its pipes, it sends its output over the report channel."""

    def take_output(kind, offset, data):
        """A piece of its `out` or `err` output starting at byte `offset` (a piece sent twice is written once);
        returns how many bytes of that output the daemon has."""


class ILogSource(Interface):
    """Where a run's output can be read on this machine."""

    def path(kind):
        """The file holding the run's `out` or `err` log."""


class IDeliveryStore(Interface):
    """Where webhook deliveries wait until a receiver acknowledged them (engine.webhooks); SqliteStore."""

    def add_deliveries(deliveries):
        """Keep new deliveries, all or none, but those whose key is kept already; return those added."""

    def update_delivery(delivery):
        """Replace the kept delivery with the same id."""

    def pending_deliveries(limit, skip=(), skip_urls=(), due_by=None, one_per_url=False):
        """The first `limit` pending deliveries due by `due_by`, soonest first, but those in `skip` and to
        `skip_urls`; with `one_per_url` only the oldest of each URL."""

    def next_due(skip=(), skip_urls=()):
        """When the soonest pending delivery (but those in `skip` and to `skip_urls`) is due, or None."""

    def list_deliveries(limit, state=None):
        """The newest deliveries, of any state or of `state`."""

    def count_deliveries():
        """{state: n} over all kept deliveries."""

    def purge_deliveries(keep):
        """Forget all but the `keep` newest ended deliveries."""
