"""A pushed project's requirements.txt: specifiers taken, anything that says where packages come from refused."""

import pytest

from scrapy_do.projects.requirements import MAX_SIZE, InvalidRequirements, environment_key, parse


def test_specifiers_with_extras_markers_hashes_and_continuations_are_taken():
    text = (b"# the project's own\n"
            b"dateparser>=1.1  # dates\n"
            b"\n"
            b"scrapy-playwright[extra]==0.0.40 ; python_version >= '3.9'\n"
            b"acme-helper==1.0 \\\n"
            b"    --hash=sha256:" + b"a" * 64 + b"\n"
            b"\xef\xbb\xbfignored-bom-only-at-start\n")
    assert parse(b"\xef\xbb\xbf" + text[:-len(b"\xef\xbb\xbfignored-bom-only-at-start\n")]) == (
        "dateparser>=1.1",
        'scrapy-playwright[extra]==0.0.40; python_version >= "3.9"',
        "acme-helper==1.0 --hash=sha256:" + "a" * 64,
    )
    assert parse(b"") == () and parse(b"# nothing\n\n") == ()


@pytest.mark.parametrize("line, says", [
    (b"-i https://evil.example/simple", "the option -i is not taken"),
    (b"--index-url=https://evil.example/simple", "the option --index-url is not taken"),
    (b"--extra-index-url https://x", "the option --extra-index-url"),
    (b"-f ./wheels", "the option -f"),
    (b"-r other.txt", "the option -r"),
    (b"-c constraints.txt", "the option -c"),
    (b"-e .", "the option -e"),
    (b"./vendor/pkg", "a local path"),
    (b"/opt/pkg.whl", "a local path"),
    (b"~/pkg", "a local path"),
    (b"file:///etc/passwd", "a direct URL"),
    (b"pkg @ https://example.com/pkg.whl", "a direct URL"),
    (b"pkg@git+https://example.com/pkg.git", "a direct URL"),
    (b"git+https://example.com/pkg.git", "a direct URL"),
    (b"not a requirement!", "is not a requirement"),
    (b"pkg==1.0 --hash=md5:abc", "is not a hash"),
])
def test_what_says_where_packages_come_from_is_refused_naming_the_line(line, says):
    with pytest.raises(InvalidRequirements) as refused:
        parse(b"scrapy-fine==1.0\n\n" + line + b"\n")
    assert "line 3:" in refused.value.msg and says in refused.value.msg


def test_too_large_or_not_utf8_is_refused():
    with pytest.raises(InvalidRequirements, match="larger than 64 KiB"):
        parse(b"a\n" * (MAX_SIZE // 2 + 1))
    with pytest.raises(InvalidRequirements, match="not UTF-8"):
        parse(b"caf\xe9==1\n")


def test_the_key_ignores_order_and_spelling_but_not_versions_python_or_base():
    one = environment_key(parse(b"b==1\nA>=2\n"), "3.11.2", "scrapy==2.19")
    assert one == environment_key(parse(b"a>=2  # again\nb == 1\n"), "3.11.2", "scrapy==2.19")
    assert one != environment_key(parse(b"a>=2\nb==2\n"), "3.11.2", "scrapy==2.19")
    assert one != environment_key(parse(b"a>=2\nb==1\n"), "3.12.0", "scrapy==2.19")
    assert one != environment_key(parse(b"a>=2\nb==1\n"), "3.11.2", "scrapy==2.20")
