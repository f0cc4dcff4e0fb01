"""Who crawls run as, for each kind of daemon and `crawl-user` value (crawluser.resolve)."""

import pytest

from scrapy_do.errors import ConfigError
from scrapy_do.launchers import crawluser
from scrapy_do.launchers.crawluser import CrawlUser

ACCOUNTS = {"root": CrawlUser("root", 0, 0, (0,)), "nobody": CrawlUser("nobody", 65534, 65534, (65534,)),
            "crawler": CrawlUser("crawler", 990, 990, (990,)), "me": CrawlUser("me", 1000, 1000, (1000,))}
SWITCHING_CAPS = set(crawluser.NEEDED_CAPABILITIES)


def lookup(accounts):
    return lambda name: accounts[name]


def refuse_create(name):
    raise AssertionError("no account should be created")


def resolve(setting, euid, caps=frozenset(), accounts=ACCOUNTS, create=refuse_create):
    return crawluser.resolve(setting, euid=euid, capabilities=set(caps), lookup=lookup(accounts), create=create)


def test_root_with_nothing_set_takes_nobody():
    assert resolve("", 0) == ACCOUNTS["nobody"]


def test_root_creates_an_account_where_there_is_no_nobody():
    created = []
    accounts = {k: v for k, v in ACCOUNTS.items() if k != "nobody"}

    def create(name):
        created.append(name)
        return CrawlUser(name, 991, 991, (991,))

    assert resolve("", 0, accounts=accounts, create=create).name == crawluser.CREATED_USER
    assert created == [crawluser.CREATED_USER]


def test_root_crawls_as_root_only_when_told_so():
    assert resolve("root", 0) is None  # None: the daemon's own user


def test_a_named_user_is_used():
    assert resolve("crawler", 0) == ACCOUNTS["crawler"]


def test_a_daemon_that_cannot_switch_runs_crawls_as_itself():
    assert resolve("", 1000) is None


def test_a_daemon_that_cannot_switch_refuses_another_crawl_user():
    with pytest.raises(ConfigError, match=r"\[scrapy-do\] crawl-user: 'crawler' needs a daemon that may switch"):
        resolve("crawler", 1000)


def test_a_daemon_with_the_four_capabilities_switches_like_root():
    assert resolve("crawler", 1000, SWITCHING_CAPS) == ACCOUNTS["crawler"]
    assert resolve("", 1000, SWITCHING_CAPS) == ACCOUNTS["nobody"]
    assert resolve("", 1000, SWITCHING_CAPS - {5}) is None  # without CAP_KILL it could not stop its crawls


def test_an_unknown_user_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="crawl-user: 'ghost' is no user on this machine"):
        resolve("ghost", 0)


def test_the_ids_child_py_reads_round_trip():
    env = ACCOUNTS["crawler"].environment()
    assert crawluser.parse_ids(env[crawluser.ENV_KEY]) == (990, 990, (990,))
    assert env["USER"] == env["LOGNAME"] == "crawler"


def test_capabilities_are_read_from_proc_status(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t00000000000000e1\n")
    assert crawluser.effective_capabilities(str(status)) == {0, 5, 6, 7}


def test_child_py_reads_the_variable_crawluser_sets():
    from scrapy_do.launchers import child

    assert child.CRAWL_USER_KEY == crawluser.ENV_KEY
