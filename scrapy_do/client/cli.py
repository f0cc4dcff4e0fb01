"""`scrapy-do-cl`: the command-line client, flag-compatible with 0.5.0's.

Defaults for --url, --username, --password and --print-format come from the
[scrapy-do] section of ~/.scrapy-do.cfg, as before; --token from the
SCRAPY_DO_TOKEN variable, then that section's `token`. Every failure prints
one line starting with `[!]` (a schedules file one per problem) and exits
non-zero.
"""

import argparse
import configparser
import getpass
import json
import os
import sys
from pathlib import Path

from tabulate import tabulate

from scrapy_do import __version__
from scrapy_do.client import schedules
from scrapy_do.client.api import ITEM_FORMATS, ClientError, ScrapyDoClient, dumps
from scrapy_do.client.archive import ArchiveError, build_archive
from scrapy_do.domain.records import TABLE_COLUMNS

FORMATS = ["simple", "grid", "fancy_grid", "presto", "psql", "pipe", "orgtbl", "jira", "rst", "mediawiki",
           "html", "latex"]
STATUSES = ["ACTIVE", "COMPLETED", "SCHEDULED", "PENDING", "RUNNING", "CANCELED", "SUCCESSFUL", "FAILED"]
#: The job table: 0.5.0's columns first, in its order, then what later versions added.
JOB_COLUMNS = [*TABLE_COLUMNS, "priority", "next-run", "reason", "items", "requests", "errors"]
#: Columns taken from a record's stats: its live summary, or Scrapy's final stats.
STATS_COLUMNS = {"items": ("items", "item_scraped_count"), "requests": ("requests", "downloader/request_count"),
                 "errors": ("errors", "log_count/ERROR")}


#: The status cell of a SUCCESSFUL job that had errors, and the line under the table that explains it.
WITH_ERRORS_MARK = "*"
WITH_ERRORS_NOTE = "* succeeded with errors (see the errors column; get-log --job-id ID --log-type err)"


def job_cell(job, column):
    if column == "status" and succeeded_with_errors(job):
        return job["status"] + WITH_ERRORS_MARK
    if column == "errors" and job.get("errors") is not None:
        return job["errors"]  # the daemon's own count (issue 13) includes spider exceptions; stats may not
    if column in STATS_COLUMNS:
        stats = job.get("stats") or {}
        return next((stats[k] for k in STATS_COLUMNS[column] if k in stats), None)
    return job.get(column)


def job_errors(job):
    """The job's error count (its record's `errors`, else its stats'), or None when unknown."""
    value = job_cell(job, "errors")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def succeeded_with_errors(job):
    return job.get("status") == "SUCCESSFUL" and (job_errors(job) or 0) > 0


def failed_on_errors(job):
    """Whether the job FAILED because it had errors (fail-on-errors), maybe among other reasons."""
    reasons = [part.strip() for part in (job.get("reason") or "").split(";")]
    return job.get("status") == "FAILED" and "errors" in reasons


def _count(n, what):
    return f"{n} {what}" if n == 1 else f"{n} {what}s"
#: Lines of a failed job's error log that `schedule-job --wait` prints, read from at most this many bytes.
TAIL_LINES, TAIL_BYTES = 20, 8192

EPILOG = """\
examples:
  scrapy-do-cl status
  scrapy-do-cl push-project --project-path ./quotesbot
  scrapy-do-cl list-projects
  scrapy-do-cl list-spiders --project quotesbot
  scrapy-do-cl schedule-job --project quotesbot --spider toscrape-css --when 'every 10 minutes'
  scrapy-do-cl schedule-job --project quotesbot --spider toscrape-css --payload '{"pages": 2}' --wait
  scrapy-do-cl schedule-job --project quotesbot --spider toscrape-css -a category=books -s DOWNLOAD_DELAY=2
  scrapy-do-cl list-jobs --status completed --spider toscrape-css --limit 20 --offset 20
  scrapy-do-cl get-log --job-id ID --log-type err --follow
  scrapy-do-cl get-items --job-id ID --follow
  scrapy-do-cl get-items --job-id ID --format csv --output items.csv
  scrapy-do-cl cancel-job --job-id ID
  scrapy-do-cl remove-project --name quotesbot
  scrapy-do-cl list-jobs --status running --json
  scrapy-do-cl export -o schedules.yaml
  scrapy-do-cl apply schedules.yaml --prune --dry-run

defaults for --url, --username, --password and --print-format are read from
the [scrapy-do] section of ~/.scrapy-do.cfg (keys url, username, password,
print-format); --token from the environment variable SCRAPY_DO_TOKEN, then
the key token there.
"""


def _bool(text):
    if text.lower() in ("yes", "true", "t", "y", "1", "on"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError("boolean value expected (yes/no)")


def _bool_or_default(text):
    """yes/no, or `default` (as "") to put an option back to the daemon's default."""
    return "" if text.lower() == "default" else _bool(text)


_bool_or_default.__name__ = "yes/no/default"  # what argparse names in "invalid ... value"


def _pair(flag, what, example, refuse=None):
    """The argparse type of a repeatable `KEY=VALUE` flag, as `scrapy crawl` takes them: a (key, value) pair."""
    def parse(text):
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected {what}=VALUE, such as {flag} {example}, not {text!r}")
        if refuse and key in refuse:
            raise argparse.ArgumentTypeError(refuse[key])
        return key, value
    parse.__name__ = f"{what}=VALUE"
    return parse


def _pairs(items):
    """The pairs of a repeated flag as a dict (a later repetition of a key wins), or None when none was given."""
    return dict(items) if items else None


def _user_defaults(home=None):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(home or os.path.expanduser("~")) / ".scrapy-do.cfg")
    section = parser["scrapy-do"] if parser.has_section("scrapy-do") else {}
    return {key: section.get(key) for key in ("url", "username", "password", "print-format", "token")}


def _option_flags(p):
    """What a run is asked to do, as `scrapy crawl` flags plus priority and a time limit."""
    p.add_argument("-a", "--arg", dest="spider_args", action="append", metavar="KEY=VALUE",
                   type=_pair("-a", "KEY", "category=books",
                              {"payload": "-a payload=... is the job's payload: give it with --payload"}),
                   help="a spider argument, as `scrapy crawl -a` takes it; repeatable (-a category=books -a "
                        "pages=3)")
    p.add_argument("-s", "--set", dest="settings", action="append", metavar="NAME=VALUE",
                   type=_pair("-s", "NAME", "DOWNLOAD_DELAY=2"),
                   help="a Scrapy setting for this job, as `scrapy crawl -s` takes it; repeatable (-s "
                        "DOWNLOAD_DELAY=2 -s CLOSESPIDER_ITEMCOUNT=100)")
    p.add_argument("--priority", type=int, metavar="N",
                   help="-1000 to 1000: pending jobs start highest priority first (daemon default 0)")
    p.add_argument("--timeout", type=int, metavar="SECONDS",
                   help="stop the crawl after this many seconds (1 to 604800); it ends FAILED, reason timeout")


def _fail_on_errors_flag(p, editing=False):
    p.add_argument("--fail-on-errors", type=_bool_or_default if editing else _bool,
                   metavar="yes/no/default" if editing else "yes/no",
                   help="yes: a crawl that exits 0 but raised in callbacks or logged errors ends FAILED, reason "
                        "errors; no: it ends SUCCESSFUL, shown as succeeded with errors; "
                        + ("default: back to the daemon's [scrapy-do] fail-on-errors" if editing else
                           "not given: the daemon's [scrapy-do] fail-on-errors (off unless set)"))


def _warm_flag(p, editing=False):
    p.add_argument("--warm", type=_bool, metavar="on/off",
                   help="off: the job's runs start cold, in a fresh interpreter as `scrapy crawl` from a shell, "
                        "even when the daemon starts crawls warm (forked in milliseconds from a process that "
                        "already imported Scrapy and the project); for spiders that start threads or open "
                        "connections at import time, or change global state later runs must not inherit; "
                        + ("on: back to warm starts" if editing else "on (the default): start warm") +
                        "; with [scrapy-do] warm-start = off every run starts cold")


def _schedule_flags(p):
    """How a periodic job runs."""
    p.add_argument("--timezone", metavar="ZONE",
                   help="IANA zone in which 'at HH:MM' and cron are read, e.g. Europe/Berlin (default: the "
                        "daemon's)")
    p.add_argument("--overlap", choices=["allow", "skip"],
                   help="skip a due run while the previous one is still pending or running (skip), or not (allow, "
                        "the default)")
    p.add_argument("--catch-up", type=_bool, metavar="yes/no",
                   help="run once at start-up for runs missed while the daemon was down")


def build_parser(defaults=None):
    defaults = defaults if defaults is not None else _user_defaults()
    parser = argparse.ArgumentParser(
        prog="scrapy-do-cl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Drive a Scrapy Do daemon from the command line.")
    parser.add_argument("--url", default=defaults.get("url") or "http://localhost:7654", help="daemon URL")
    parser.add_argument("--username", default=defaults.get("username"), help="user name (auth)")
    parser.add_argument("--password", default=defaults.get("password"),
                        help="password (prompted for when a username is given without one)")
    parser.add_argument("--token", default=os.environ.get("SCRAPY_DO_TOKEN") or defaults.get("token"),
                        help="API token, sent as 'Authorization: Bearer TOKEN' instead of --username and "
                             "--password (it wins over them); better given in SCRAPY_DO_TOKEN than here, where "
                             "ps shows it")
    parser.add_argument("--print-format", default=defaults.get("print-format") or "psql", choices=FORMATS,
                        help="table format (default psql)")
    parser.add_argument("--verify-ssl", type=_bool, default=True, help="verify the TLS certificate (yes/no)")
    parser.add_argument("--json", action="store_true",
                        help="print the daemon's JSON answer, for scripts (also after the command)")
    parser.add_argument("--version", action="version", version=f"scrapy-do-cl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # --json is taken after the command too; SUPPRESS keeps the command from resetting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the daemon's JSON answer, for scripts")

    def command(name, help_text, *examples, notes=""):
        label = "example" if len(examples) == 1 else "examples"
        epilog = f"{label}:\n" + "".join(f"  scrapy-do-cl {e}\n" for e in examples) + notes
        return sub.add_parser(name, help=help_text, description=help_text, epilog=epilog, parents=[common],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    command("status", "show the daemon's status", "status")
    p = command("push-project", "zip a project folder and push it", "push-project --project-path ./quotesbot",
                notes="\nthe archive holds every file of the folder (as zip -r would: requirements.txt and data\n"
                      "files too) but version control, virtualenvs, caches and *.pyc; a [deploy] glob in\n"
                      "scrapy.cfg chooses instead. With a requirements.txt the daemon builds the project's\n"
                      "environment first: its output is printed on stderr as it comes.\n")
    p.add_argument("--project-path", default=".", help="folder holding scrapy.cfg (default: here)")
    command("list-projects", "list the projects", "list-projects")
    p = command("list-spiders", "list the spiders of a project", "list-spiders --project quotesbot")
    p.add_argument("--project", required=True, help="project name")
    p = command("list-jobs", "list jobs by status, or one job", "list-jobs --status COMPLETED --limit 10",
                "list-jobs --status completed --limit 10 --offset 10",
                notes="\nbesides 0.5.0's columns the table shows each job's priority, its next run (for\n"
                      "schedules), why a run ended (timeout, canceled, exit code N, signal N, errors)\n"
                      "and its items, requests and errors. SUCCESSFUL* marks a job that succeeded\n"
                      "with errors.\n")
    p.add_argument("--status", default="ACTIVE", type=str.upper, choices=STATUSES, metavar="STATUS",
                   help=f"a status or group, in any case: {', '.join(STATUSES)} (default ACTIVE)")
    p.add_argument("--job-id", help="show only this job")
    p.add_argument("--project", help="only jobs of this project")
    p.add_argument("--spider", help="only jobs of this spider")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    p.add_argument("--offset", type=int, help="skip this many first (with --limit: pages of jobs)")
    p = command("get-log", "print a job's log", "get-log --job-id ID --log-type err --follow")
    p.add_argument("--job-id", required=True, help="job identifier")
    p.add_argument("--log-type", default="out", choices=["out", "err"], help="out (stdout) or err (stderr)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing while the job runs")
    p = command("get-items", "print (or save) the items a job scraped, as JSON lines or CSV",
                "get-items --job-id ID", "get-items --job-id ID --follow | jq .title",
                "get-items --job-id ID --format csv --output items.csv",
                notes="\nJSON lines hold one item per line. Without --follow a running job's items so\n"
                      "far are printed; with it new items are printed as they come, until the job\n"
                      "ends. CSV (a header row of every key seen, nested values as JSON) is what\n"
                      "there is now, so it cannot be followed.\n")
    p.add_argument("--job-id", required=True, help="job identifier")
    p.add_argument("--format", default="jl", choices=ITEM_FORMATS,
                   help="jl (JSON lines, the default) or csv")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing a running job's new items until it ends (jl only)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the items to FILE (replaced; written as they come) instead of printing them")
    p = command("schedule-job", "schedule a job now or periodically",
                "schedule-job --project quotesbot --spider toscrape-css --when 'every 10 minutes'",
                "schedule-job --project quotesbot --spider toscrape-css -a category=books -s DOWNLOAD_DELAY=2",
                "schedule-job --project quotesbot --spider toscrape-css --priority 10 --timeout 3600 --wait",
                "schedule-job --project quotesbot --spider toscrape-css --fail-on-errors yes --wait",
                notes="\n-a and -s work as in `scrapy crawl`: values are text; a later repetition of a\n"
                      "name wins. --wait waits for a job run now; for a periodic job (--when other\n"
                      "than now) it says so and prints the identifier without waiting. A job that\n"
                      "succeeded with errors (logged errors, raising callbacks) exits 0 after --wait\n"
                      "unless --fail-on-errors yes made it FAILED.\n")
    p.add_argument("--project", required=True, help="project name")
    p.add_argument("--spider", required=True, help="spider name")
    p.add_argument("--when", default="now", help="'now' or a spec like 'every 10 minutes' (default now)")
    p.add_argument("--description", default="", help="a short description")
    p.add_argument("--payload", default="{}", help="a JSON object passed to the spider as -a payload=...")
    _option_flags(p)
    _fail_on_errors_flag(p)
    _warm_flag(p)
    _schedule_flags(p)
    _name_flags(p)
    p.add_argument("--wait", action="store_true",
                   help="wait until the job ends; exit 0 only if it succeeded, else print the end of its error "
                        "log and exit 3 (with --when now; a periodic job is not waited for)")
    for name, verb, example in (("pause-job", "pause a periodic job: it spawns no runs until resumed",
                                 "pause-job --job-id ID"),
                                ("resume-job", "resume a paused job; its next run is computed from now",
                                 "resume-job --job-id ID")):
        p = command(name, verb, example)
        p.add_argument("--job-id", required=True, help="identifier of a SCHEDULED job")
    p = command("edit-job", "change a periodic job in place (or the priority of a pending one)",
                "edit-job --job-id ID --when '*/30 * * * *' --timezone Europe/Berlin",
                "edit-job --job-id ID -a category=travel --priority 5",
                notes="\nOnly what you give changes. -a and -s replace the job's arguments or settings\n"
                      "as a whole. A PENDING job can only change its --priority.\n")
    p.add_argument("--job-id", required=True, help="job identifier")
    p.add_argument("--when", help="a new spec: 'every 2 hours' or a cron expression")
    p.add_argument("--description", help="a new description")
    _option_flags(p)
    _fail_on_errors_flag(p, editing=True)
    _warm_flag(p, editing=True)
    _schedule_flags(p)
    _name_flags(p, editing=True)
    p = command("get-stats", "print a job's Scrapy stats (live while it runs, final once it ended)",
                "get-stats --job-id ID", "get-stats --job-id ID --json")
    p.add_argument("--job-id", required=True, help="job identifier")
    p = command("cancel-job", "cancel a job", "cancel-job --job-id ID")
    p.add_argument("--job-id", required=True, help="job identifier")
    p = command("remove-project", "remove a project", "remove-project --name quotesbot",
                "remove-project --name quotesbot --purge")
    p.add_argument("--name", required=True, help="project name")
    p.add_argument("--purge", action="store_true",
                   help="also delete what its crawls wrote (its data directory; kept by default)")
    p = command("apply", "make the daemon's named schedules match a YAML file (schedules as code)",
                "apply schedules.yaml --dry-run", "apply schedules.yaml --prune",
                notes="\ncreates the file's schedules the daemon lacks and changes those that differ (in\n"
                      "place; a new project, spider or payload replaces the schedule by a new one\n"
                      "of the same name). Named schedules the file lacks stay unless --prune is given;\n"
                      "unnamed ones are never touched. A file with any problem changes nothing: each\n"
                      "problem is printed as FILE:LINE: what to fix. See docs/schedules-as-code.rst.\n")
    p.add_argument("file", metavar="FILE", help="the schedules file ('-': standard input)")
    p.add_argument("--prune", action="store_true",
                   help="also remove (cancel) the named schedules the file does not hold")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p = command("export", "write the daemon's named schedules as a file for apply",
                "export -o schedules.yaml", "export > schedules.yaml",
                notes="\nunnamed schedules are left out (stderr says which); name one to manage it:\n"
                      "scrapy-do-cl edit-job --job-id ID --name NAME. With --json the same document\n"
                      "is written as JSON, which apply reads too.\n")
    p.add_argument("--output", "-o", metavar="FILE", help="write it to FILE instead of standard output")
    return parser


def _name_flags(p, editing=False):
    """A schedule's name, which apply and export go by, and where its runs' ends are reported."""
    p.add_argument("--name", help="rename the periodic job (unique among schedules)" if editing else
                   "name the periodic job: unique among schedules, so apply and export can manage it")
    p.add_argument("--notify", metavar="URL",
                   help="an http(s) URL told when each run ends" + ("; '' stops it" if editing else ""))


class Output:
    def __init__(self, args, stream):
        self.args = args
        self.stream = stream

    def raw(self, data):
        print(dumps(data), file=self.stream)

    def table(self, headers, rows, data=None):
        if self.args.json:
            return self.raw(data if data is not None else [dict(zip(headers, r)) for r in rows])
        if not rows:
            print("[i] No data to show.", file=self.stream)
            return
        print(tabulate(rows, headers=headers, tablefmt=self.args.print_format), file=self.stream)


def _payload(text):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ClientError(f"the payload is not valid JSON: {e}") from None
    return json.dumps(value, ensure_ascii=False)


def _human_seconds(seconds):
    """1d 12m 24s, as the daemon words an uptime (zero parts left out)."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return seconds
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join([*parts, f"{seconds}s"])


def _status_rows(data):
    """The status table: the uptime as the daemon words it (1d 12m 24s), not in raw seconds."""
    rows = []
    for key, value in data.items():
        if key == "status" or (key == "uptime" and "uptime-seconds" in data):
            continue
        if key == "uptime-seconds":
            key, value = "uptime", data.get("uptime") or _human_seconds(value)
        rows.append([key, value])
    return rows


def _errors_count(job):
    n = job_errors(job)
    return f" ({_count(n, 'error')})" if n else ""


def _print_failure(client, job):
    """After --wait: why the job did not succeed and the end of its error log, on stderr."""
    identifier = job["identifier"]
    if failed_on_errors(job):  # fail-on-errors: the crawl itself exited 0
        first, _, rest = job["reason"].partition("; ")
        ended = f"failed: {first}{_errors_count(job)}" + (f"; {rest}" if rest else "")
    else:
        ended = f"ended {job['status']}" + (f" ({job['reason']})" if job.get("reason") else "")
    try:
        tail = client.log_tail(identifier, "err", TAIL_LINES, TAIL_BYTES)
    except ClientError as e:
        print(f"[!] Job {identifier} {ended}; its error log cannot be read: {e}", file=sys.stderr)
        return
    if not tail.strip():
        print(f"[!] Job {identifier} {ended}; its error log is empty.", file=sys.stderr)
        return
    print(f"[!] Job {identifier} {ended}; the last lines of its error log:", file=sys.stderr)
    print(tail, file=sys.stderr)
    print(f"[i] The whole log: scrapy-do-cl get-log --job-id {identifier} --log-type err", file=sys.stderr)


def run(args, client, out, stdout):
    """Carry out one command; return the exit code."""
    cmd = args.command
    if cmd == "status":
        data = client.status()
        out.table(["key", "value"], _status_rows(data), data)
    elif cmd == "push-project":
        try:
            _, archive = build_archive(args.project_path)
        except (ArchiveError, OSError) as e:
            raise ClientError(f"cannot build the archive: {e}") from None
        def progress(chunk):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()

        data = client.push_project(archive, on_build_output=None if args.json else progress)
        out.table([data["name"]], [[s] for s in data["spiders"]], data)
        built = data.get("environment")
        if built and not args.json:
            how = "reused" if built.get("reused") else f"built in {built.get('seconds', 0):g} s"
            print(f"[i] {_count(built.get('requirements', 0), 'requirement')} from requirements.txt: environment "
                  f"{how}; its build log: GET /get-log/build/{data['name']}.log", file=sys.stderr)
    elif cmd == "list-projects":
        projects = client.list_projects()
        out.table(["name"], [[p] for p in projects], projects)
    elif cmd == "list-spiders":
        spiders = client.list_spiders(args.project)
        out.table(["name"], [[s] for s in spiders], spiders)
    elif cmd == "list-jobs":
        jobs = client.list_jobs(args.status, args.job_id, args.project, args.spider, args.limit, args.offset)
        out.table(JOB_COLUMNS, [[job_cell(j, c) for c in JOB_COLUMNS] for j in jobs], jobs)
        if not args.json and any(succeeded_with_errors(j) for j in jobs):
            print(WITH_ERRORS_NOTE, file=stdout)
    elif cmd == "get-log":
        for chunk in client.get_log(args.job_id, args.log_type, follow=args.follow):
            stdout.buffer.write(chunk)
            stdout.buffer.flush()
    elif cmd == "get-items":
        def waiting(job):
            print(f"[i] Job {job['identifier']} is PENDING; waiting for it to start", file=sys.stderr)
        _write_items(client.get_items(args.job_id, args.format, follow=args.follow, on_wait=waiting), args.output,
                     stdout)
    elif cmd == "schedule-job":
        identifier = client.schedule_job(args.project, args.spider, args.when, args.description,
                                         _payload(args.payload), args=_pairs(args.spider_args),
                                         settings=_pairs(args.settings), priority=args.priority,
                                         timeout=args.timeout, timezone=args.timezone, overlap=args.overlap,
                                         catch_up=args.catch_up, fail_on_errors=args.fail_on_errors,
                                         name=args.name, notify=args.notify, warm=args.warm)
        now = args.when.strip().lower() == "now"
        if args.wait and now:
            job = client.wait_job(identifier)
            out.table(["identifier", "status", "duration"], [[identifier, job["status"], job["duration"]]], job)
            if job["status"] == "SUCCESSFUL":
                if succeeded_with_errors(job):
                    print(f"[i] Job {identifier} succeeded with errors{_errors_count(job)}; see them with "
                          f"scrapy-do-cl get-log --job-id {identifier} --log-type err", file=sys.stderr)
                return 0
            _print_failure(client, job)
            return 3
        if args.wait:
            print(f"[i] Not waiting: --wait waits only for jobs run now, and {args.when!r} is a periodic job "
                  "(its runs, maybe far off, are jobs of their own); see them with "
                  "scrapy-do-cl list-jobs --status ACTIVE", file=sys.stderr)
        out.table(["identifier"], [[identifier]], {"identifier": identifier})
    elif cmd in ("pause-job", "resume-job", "edit-job"):
        if cmd == "edit-job":
            job = client.edit_job(args.job_id, when=args.when, description=args.description,
                                  args=_pairs(args.spider_args), settings=_pairs(args.settings),
                                  priority=args.priority, timeout=args.timeout, timezone=args.timezone,
                                  overlap=args.overlap, catch_up=args.catch_up,
                                  fail_on_errors=args.fail_on_errors, name=args.name, notify=args.notify,
                                  warm=args.warm)
        else:
            job = getattr(client, cmd.replace("-", "_"))(args.job_id)
        out.table(JOB_COLUMNS, [[job_cell(job, c) for c in JOB_COLUMNS]], job)
    elif cmd == "get-stats":
        stats = client.get_stats(args.job_id)
        out.table(["stat", "value"], [[k, v] for k, v in sorted(stats.items())], stats)
    elif cmd == "cancel-job":
        client.cancel_job(args.job_id)
        out.table(["canceled"], [[args.job_id]], {"canceled": args.job_id})
    elif cmd == "remove-project":
        client.remove_project(args.name, purge=args.purge)
        out.table(["removed"], [[args.name]], {"removed": args.name})
    elif cmd == "apply":
        return _apply(args, client, out)
    elif cmd == "export":
        _export(args, client, out)
    return 0


def _read_schedules(path):
    """(the file's text, the name its problems are reported under)."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as e:
        raise ClientError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _checked_plan(args, client):
    """The plan for the file, after the daemon confirmed its projects, spiders and zones: changes nothing."""
    text, label = _read_schedules(args.file)
    desired = schedules.parse(text, label)
    projects = set(client.list_projects())
    wanted = {d.values["project"] for d in desired}
    spiders = {p: (client.list_spiders(p) if p in projects else None) for p in wanted}
    spiders.update((p, []) for p in projects - wanted)  # named in "it has: ..." hints
    problems = schedules.unknown_targets(desired, spiders)
    if problems:
        raise schedules.FileError(label, problems)
    records = client.list_schedules()
    if any("name" not in r for r in records):
        raise ClientError(f"{args.url} does not name schedules (its job records have no 'name'): it is too old "
                          "for apply; upgrade it")
    plan = schedules.plan(desired, records, prune=args.prune)
    for action in plan.actions:  # a zone the client knows but the daemon may not
        d = action.desired
        if d is not None and d.values["timezone"] is not None:
            try:
                client.preview_schedule(d.values["when"], d.values["timezone"])
            except ClientError as e:
                if str(e).startswith("400"):
                    problems.append((d.line_of("timezone"), f"the daemon refuses it: {str(e)[5:]}"))
    if problems:
        raise schedules.FileError(label, problems)
    return plan, label


def _create(client, action):
    identifier = client.schedule_job(**schedules.create_call(action.desired))
    if action.desired.values["paused"]:
        client.pause_job(identifier)
    return identifier


def _carry_out(client, action):
    """Do one action of a plan; the identifier of the schedule it leaves (None for a removal)."""
    if action.kind == "remove":
        client.cancel_job(action.identifier)
        return None
    if action.kind == "replace":
        # Names are unique among SCHEDULED jobs: the old one gives its name up first, and gets it back if the
        # new one cannot be made, so a refused replace leaves the schedule as it was.
        client.edit_job(action.identifier, name="")
        try:
            identifier = _create(client, action)
        except ClientError:
            client.edit_job(action.identifier, name=action.name)
            raise
        client.cancel_job(action.identifier)
        return identifier
    if action.kind == "create":
        return _create(client, action)
    edits = schedules.edit_call(action)
    if edits:
        client.edit_job(action.identifier, **edits)
    pause = schedules.pause_call(action)
    if pause is not None:
        (client.pause_job if pause else client.resume_job)(action.identifier)
    return action.identifier


def _apply(args, client, out):
    plan, label = _checked_plan(args, client)
    report = {"file": label, "dry-run": args.dry_run, **plan.as_json()}
    show = (lambda line: None) if args.json else (lambda line: print(line, file=out.stream))
    for number, (action, entry) in enumerate(zip(plan.actions, report["actions"])):
        show(action.describe())
        if args.dry_run:
            continue
        try:
            entry["identifier"] = _carry_out(client, action)
        except ClientError as e:
            raise ClientError(f"{action.kind} {action.name} failed: {e}; {number} of {len(plan.actions)} changes "
                              "were made before it: apply again once it is fixed") from None
        if action.kind == "replace":
            entry["previous"] = action.identifier
    if args.json:
        out.raw(report)
    elif not plan.actions:
        show(f"No changes: the daemon's named schedules match {label} ({_count(len(plan.unchanged), 'schedule')}).")
    elif args.dry_run:
        show(f"Plan: {plan.summary()}. Dry run: nothing was changed.")
    else:
        c = plan.counts()
        show(f"Applied: {c['create']} created, {c['change']} changed, {c['replace']} replaced, {c['remove']} "
             f"removed, {c['unchanged']} unchanged.")
    if plan.kept and not args.json:
        print(f"[i] {_count(len(plan.kept), 'named schedule')} not in {label} left as they are "
              f"({', '.join(plan.kept)}); --prune removes them", file=sys.stderr)
    return 0


def _export(args, client, out):
    records = client.list_schedules()
    if args.json:
        named = sorted((r for r in records if r.get("name")), key=lambda r: r["name"])
        text = dumps({"schedules": [schedules.entry(r) for r in named]}) + "\n"
        unnamed = [r for r in records if not r.get("name")]
    else:
        text, unnamed = schedules.export(records, header="Scrapy Do schedules, written by scrapy-do-cl export.\n"
                                                         "Apply them with: scrapy-do-cl apply FILE [--prune]")
    if unnamed:
        print(f"[i] {_count(len(unnamed), 'unnamed schedule')} left out: apply and export manage named schedules "
              "only. Name one to manage it: scrapy-do-cl edit-job --job-id ID --name NAME", file=sys.stderr)
        for r in unnamed:
            print(f"[i]   {r['identifier']}  {r.get('project')}/{r.get('spider')}  {r.get('schedule')!r}",
                  file=sys.stderr)
    if args.output is None:
        out.stream.write(text)
        return
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as e:
        raise ClientError(f"cannot write {args.output}: {e.strerror or e}") from None


def _write_items(chunks, output, stdout):
    """Each chunk as it comes, flushed, so a followed job's items show up (or land in FILE) at once.

    FILE is opened only once the daemon has answered: a refused request leaves an existing FILE as it was.
    """
    chunks = iter(chunks)
    if output is None:
        for chunk in chunks:
            stdout.buffer.write(chunk)
            stdout.buffer.flush()
        return
    try:
        target = open(output, "wb")
    except OSError as e:
        raise ClientError(f"cannot write {output}: {e.strerror or e}") from None
    with target:
        for chunk in chunks:
            try:
                target.write(chunk)
                target.flush()
            except OSError as e:
                raise ClientError(f"cannot write {output}: {e.strerror or e}") from None


def main(argv=None, stdout=None, client_factory=ScrapyDoClient, defaults=None):
    stdout = stdout or sys.stdout
    parser = build_parser(defaults)
    args = parser.parse_args(argv)
    if args.command == "get-items" and args.follow and args.format != "jl":
        parser.error("get-items: --follow works with --format jl only (a CSV is sent as it is now)")
    if not args.command:
        parser.print_usage(sys.stderr)
        print("[!] You need to specify a command to run; see scrapy-do-cl --help.", file=sys.stderr)
        return 1
    username, password, extra = args.username, args.password, {}
    if args.token:  # the token wins: no user name sent, no password asked for
        username, password, extra = None, None, {"token": args.token}
    elif username is not None and password is None:
        password = getpass.getpass()
    client = client_factory(args.url, username, password, verify=args.verify_ssl, **extra)
    try:
        return run(args, client, Output(args, stdout), stdout)
    except schedules.FileError as e:
        for line in str(e).splitlines():
            print(f"[!] {line}", file=sys.stderr)
        print(f"[!] {e.filename}: {_count(len(e.problems), 'problem')}, nothing was changed", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"[!] {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
