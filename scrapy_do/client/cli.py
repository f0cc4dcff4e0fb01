"""`scrapy-do-cl`: the command-line client, flag-compatible with 0.5.0's.

Defaults for --url, --username, --password and --print-format come from the
[scrapy-do] section of ~/.scrapy-do.cfg, as before. Every failure prints one
line starting with `[!]` and exits non-zero.
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
from scrapy_do.client.api import ClientError, ScrapyDoClient, dumps
from scrapy_do.client.archive import ArchiveError, build_archive
from scrapy_do.domain.records import TABLE_COLUMNS

FORMATS = ["simple", "grid", "fancy_grid", "presto", "psql", "pipe", "orgtbl", "jira", "rst", "mediawiki",
           "html", "latex"]
STATUSES = ["ACTIVE", "COMPLETED", "SCHEDULED", "PENDING", "RUNNING", "CANCELED", "SUCCESSFUL", "FAILED"]
JOB_COLUMNS = TABLE_COLUMNS

EPILOG = """\
examples:
  scrapy-do-cl status
  scrapy-do-cl push-project --project-path ./quotesbot
  scrapy-do-cl list-projects
  scrapy-do-cl list-spiders --project quotesbot
  scrapy-do-cl schedule-job --project quotesbot --spider toscrape-css --when 'every 10 minutes'
  scrapy-do-cl schedule-job --project quotesbot --spider toscrape-css --payload '{"pages": 2}' --wait
  scrapy-do-cl list-jobs --status COMPLETED --spider toscrape-css --limit 20
  scrapy-do-cl get-log --job-id ID --log-type err --follow
  scrapy-do-cl cancel-job --job-id ID
  scrapy-do-cl remove-project --name quotesbot
  scrapy-do-cl --json list-jobs --status RUNNING

defaults for --url, --username, --password and --print-format are read from
the [scrapy-do] section of ~/.scrapy-do.cfg (keys url, username, password,
print-format).
"""


def _bool(text):
    if text.lower() in ("yes", "true", "t", "y", "1", "on"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError("boolean value expected (yes/no)")


def _user_defaults(home=None):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(home or os.path.expanduser("~")) / ".scrapy-do.cfg")
    section = parser["scrapy-do"] if parser.has_section("scrapy-do") else {}
    return {key: section.get(key) for key in ("url", "username", "password", "print-format")}


def build_parser(defaults=None):
    defaults = defaults if defaults is not None else _user_defaults()
    parser = argparse.ArgumentParser(
        prog="scrapy-do-cl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Drive a Scrapy Do daemon from the command line.")
    parser.add_argument("--url", default=defaults.get("url") or "http://localhost:7654", help="daemon URL")
    parser.add_argument("--username", default=defaults.get("username"), help="user name (auth)")
    parser.add_argument("--password", default=defaults.get("password"),
                        help="password (prompted for when a username is given without one)")
    parser.add_argument("--print-format", default=defaults.get("print-format") or "psql", choices=FORMATS,
                        help="table format (default psql)")
    parser.add_argument("--verify-ssl", type=_bool, default=True, help="verify the TLS certificate (yes/no)")
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer, for scripts")
    parser.add_argument("--version", action="version", version=f"scrapy-do-cl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text, example):
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=f"example:\n  scrapy-do-cl {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    command("status", "show the daemon's status", "status")
    p = command("push-project", "zip a project folder and push it", "push-project --project-path ./quotesbot")
    p.add_argument("--project-path", default=".", help="folder holding scrapy.cfg (default: here)")
    command("list-projects", "list the projects", "list-projects")
    p = command("list-spiders", "list the spiders of a project", "list-spiders --project quotesbot")
    p.add_argument("--project", required=True, help="project name")
    p = command("list-jobs", "list jobs by status, or one job", "list-jobs --status COMPLETED --limit 10")
    p.add_argument("--status", default="ACTIVE", choices=STATUSES, help="status or group (default ACTIVE)")
    p.add_argument("--job-id", help="show only this job")
    p.add_argument("--project", help="only jobs of this project")
    p.add_argument("--spider", help="only jobs of this spider")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    p = command("get-log", "print a job's log", "get-log --job-id ID --log-type err --follow")
    p.add_argument("--job-id", required=True, help="job identifier")
    p.add_argument("--log-type", default="out", choices=["out", "err"], help="out (stdout) or err (stderr)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing while the job runs")
    p = command("schedule-job", "schedule a job now or periodically",
                "schedule-job --project quotesbot --spider toscrape-css --when 'every 10 minutes'")
    p.add_argument("--project", required=True, help="project name")
    p.add_argument("--spider", required=True, help="spider name")
    p.add_argument("--when", default="now", help="'now' or a spec like 'every 10 minutes' (default now)")
    p.add_argument("--description", default="", help="a short description")
    p.add_argument("--payload", default="{}", help="a JSON object passed to the spider as -a payload=...")
    p.add_argument("--wait", action="store_true",
                   help="wait until the job ends; exit 0 only if it succeeded (with --when now)")
    p = command("cancel-job", "cancel a job", "cancel-job --job-id ID")
    p.add_argument("--job-id", required=True, help="job identifier")
    p = command("remove-project", "remove a project", "remove-project --name quotesbot")
    p.add_argument("--name", required=True, help="project name")
    return parser


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


def run(args, client, out, stdout):
    """Carry out one command; return the exit code."""
    cmd = args.command
    if cmd == "status":
        data = client.status()
        out.table(["key", "value"], [[k, v] for k, v in data.items() if k != "status"], data)
    elif cmd == "push-project":
        try:
            _, archive = build_archive(args.project_path)
        except (ArchiveError, OSError) as e:
            raise ClientError(f"cannot build the archive: {e}") from None
        data = client.push_project(archive)
        out.table([data["name"]], [[s] for s in data["spiders"]], data)
    elif cmd == "list-projects":
        projects = client.list_projects()
        out.table(["name"], [[p] for p in projects], projects)
    elif cmd == "list-spiders":
        spiders = client.list_spiders(args.project)
        out.table(["name"], [[s] for s in spiders], spiders)
    elif cmd == "list-jobs":
        jobs = client.list_jobs(args.status, args.job_id, args.project, args.spider, args.limit)
        out.table(JOB_COLUMNS, [[j.get(c) for c in JOB_COLUMNS] for j in jobs], jobs)
    elif cmd == "get-log":
        for chunk in client.get_log(args.job_id, args.log_type, follow=args.follow):
            stdout.buffer.write(chunk)
            stdout.buffer.flush()
    elif cmd == "schedule-job":
        identifier = client.schedule_job(args.project, args.spider, args.when, args.description,
                                         _payload(args.payload))
        if args.wait and args.when.strip().lower() == "now":
            job = client.wait_job(identifier)
            out.table(["identifier", "status", "duration"], [[identifier, job["status"], job["duration"]]], job)
            return 0 if job["status"] == "SUCCESSFUL" else 3
        out.table(["identifier"], [[identifier]], {"identifier": identifier})
    elif cmd == "cancel-job":
        client.cancel_job(args.job_id)
        out.table(["canceled"], [[args.job_id]], {"canceled": args.job_id})
    elif cmd == "remove-project":
        client.remove_project(args.name)
        out.table(["removed"], [[args.name]], {"removed": args.name})
    return 0


def main(argv=None, stdout=None, client_factory=ScrapyDoClient, defaults=None):
    stdout = stdout or sys.stdout
    parser = build_parser(defaults)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_usage(sys.stderr)
        print("[!] You need to specify a command to run; see scrapy-do-cl --help.", file=sys.stderr)
        return 1
    password = args.password
    if args.username is not None and password is None:
        password = getpass.getpass()
    client = client_factory(args.url, args.username, password, verify=args.verify_ssl)
    try:
        return run(args, client, Output(args, stdout), stdout)
    except ClientError as e:
        print(f"[!] {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
