"""Figures for per-project environments (issue 14), run by hand: `.venv/bin/python bench/environments.py`.

Prints, as medians over N runs (each run a fresh daemon with a fresh store, so a cold uv cache under
<store>/envs/.cache):
  * the wall time of POST /push-project.json through the real daemon for a project with ONE small
    requirement (a hand-made wheel in a local folder: [scrapy-do] find-links, no index, no network),
    alongside the same project pushed without requirements.txt, so the environment's share shows;
    and the push answer's environment.seconds;
  * the floor a user would otherwise pay, with no daemon: `python -m venv --system-site-packages` +
    `pip install --no-index --find-links`, and the same with uv (`uv venv` + `uv pip install`), cold caches;
  * a re-push of the same project (its environment reused): wall time, and environment.reused (checked).
Targets (issue 14): a re-push whose environment exists <= 1 s, and answers environment.reused true.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import make_wheel, offline_copy, offline_zip, reachable_tempdir, zip_tree  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

CONF = "[scrapy-do]\njob-slots = 2\nfind-links = wheels\n[web]\ninterfaces = 127.0.0.1:0\n"
REQUIREMENT = "acme-helper==1.0"
SPIDER = '''
import acme_helper
import scrapy


class HelpedSpider(scrapy.Spider):
    name = "helped"
    start_urls = ["data:,hi"]

    def parse(self, response):
        yield {"version": acme_helper.VERSION}
'''


def project(src, name, requirements=None):
    """The offline fixture as project `name`; with `requirements`, a spider importing acme_helper and that
    requirements.txt next to scrapy.cfg."""
    shutil.rmtree(Path(src) / name, ignore_errors=True)
    tree = offline_copy(src, name, {"helped": None if requirements is None else SPIDER})
    if requirements is not None:
        (tree / "requirements.txt").write_text(requirements)
    return zip_tree(tree, name)


def timed_push(d, archive_name, data):
    start = time.perf_counter()
    code, body = d.request("/push-project.json", {"archive": (archive_name, data)})
    wall = time.perf_counter() - start
    assert code == 200, body
    return wall, body


def daemon_run(tmp):
    """One fresh daemon: warm-up pushes (not counted), the project without requirements.txt, then with it
    (cold cache: the environment is built), then the same again (reused)."""
    tmp = Path(tmp)
    make_wheel(tmp / "wheels", "acme-helper", "1.0")
    plain = project(tmp / "src-plain", "helped")
    helped = project(tmp / "src-helped", "helped", REQUIREMENT + "\n")
    d = DaemonProcess(tmp, CONF)
    d.start()
    try:
        timed_push(d, "offline.zip", offline_zip())  # first push of a new daemon: not counted
        assert not (tmp / "projects" / "envs" / ".cache").exists() or not any(
            (tmp / "projects" / "envs" / ".cache").iterdir()), "uv cache not cold"
        timed_push(d, "helped.zip", plain)  # the project's first push: not counted either
        without, body = timed_push(d, "helped.zip", plain)
        assert body.get("environment") is None, body
        cold, body = timed_push(d, "helped.zip", helped)
        env = body["environment"]
        assert env["reused"] is False and env["requirements"] == 1, body
        again, body2 = timed_push(d, "helped.zip", helped)
        return {"without": without, "cold": cold, "seconds": env["seconds"], "again": again,
                "reused": body2["environment"]["reused"], "again_seconds": body2["environment"]["seconds"]}
    finally:
        d.stop()


def run(argv, env):
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def floors(tmp):
    """The same install without the daemon, cold caches: (venv, pip install), (uv venv, uv pip install)."""
    import uv

    tmp = Path(tmp)
    wheels = tmp / "wheels"
    make_wheel(wheels, "acme-helper", "1.0")
    env = {**os.environ, "PIP_CACHE_DIR": str(tmp / "pip-cache"), "UV_CACHE_DIR": str(tmp / "uv-cache"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    pip_venv = run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "pipenv")], env)
    pip_install = run([str(tmp / "pipenv" / "bin" / "pip"), "install", "--isolated", "--no-index", "--find-links",
                       str(wheels), REQUIREMENT], env)
    uvbin = uv.find_uv_bin()
    uv_venv = run([uvbin, "venv", "--no-config", "--quiet", "--system-site-packages", "--python", sys.executable,
                   str(tmp / "uvenv")], env)
    uv_install = run([uvbin, "pip", "install", "--no-config", "--quiet", "--python",
                      str(tmp / "uvenv" / "bin" / "python"), "--no-index", "--find-links", str(wheels), REQUIREMENT],
                     env)
    for venv in ("pipenv", "uvenv"):
        check = subprocess.run([str(tmp / venv / "bin" / "python"), "-c",
                                "import acme_helper; print(acme_helper.VERSION)"], capture_output=True, text=True,
                               check=True)
        assert check.stdout.strip() == "1.0", check
    return {"pip_venv": pip_venv, "pip_install": pip_install, "uv_venv": uv_venv, "uv_install": uv_install}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (default 5)")
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        with reachable_tempdir("sd-bench-envs-") as tmp:
            figures = daemon_run(tmp)
        with tempfile.TemporaryDirectory(prefix="sd-bench-envs-floor-") as tmp:
            figures.update(floors(tmp))
        results.append(figures)

    def med(key):
        return statistics.median(r[key] for r in results)

    without, cold, again = med("without"), med("cold"), med("again")
    print(f"push of a project with one small requirement ({REQUIREMENT}, local wheel, find-links, no index), "
          f"median of {args.runs}, fresh daemon and store each run")
    print(f"  push without requirements.txt                       {without:6.3f} s")
    print(f"  push with requirements.txt, cold uv cache           {cold:6.3f} s   "
          f"(environment's share {cold - without:+.3f} s; answer's environment.seconds {med('seconds'):.2f})")
    print(f"  re-push, environment reused                         {again:6.3f} s   "
          f"(max {max(r['again'] for r in results):.3f} s; vs. without requirements.txt {again - without:+.3f} s)"
          "   target <= 1 s")
    reused = [r["reused"] for r in results]
    print(f"  re-push answers environment.reused: {reused}, environment.seconds "
          f"{[r['again_seconds'] for r in results]}   target: all true")
    print("the floor, no daemon (cold caches)")
    pip_total = [r["pip_venv"] + r["pip_install"] for r in results]
    uv_total = [r["uv_venv"] + r["uv_install"] for r in results]
    print(f"  python -m venv --system-site-packages + pip install {statistics.median(pip_total):6.3f} s   "
          f"(venv {med('pip_venv'):.3f} s + install {med('pip_install'):.3f} s)")
    print(f"  uv venv --system-site-packages + uv pip install     {statistics.median(uv_total):6.3f} s   "
          f"(venv {med('uv_venv'):.3f} s + install {med('uv_install'):.3f} s)")
    if not all(reused):
        sys.exit("a re-push did not reuse its environment")


if __name__ == "__main__":
    main()
