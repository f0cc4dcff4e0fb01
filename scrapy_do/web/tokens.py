"""API tokens for scripts and CI: the `[web] tokens-db` file, its reloading, and `scrapy-do-token`.

The file holds one token a line, `NAME:ROLE:SHA256HEX` (`#` starts a comment), ROLE `read-only` (GET and
HEAD) or `full`. Only the hash is stored: a token is `sdo_` plus 32 random bytes (256 bits), so a plain
SHA-256 is enough; a slow password hash (bcrypt, scrypt) guards guessable secrets, and nobody guesses 2^256.
The daemon re-reads the file when its stat (inode, size, mtime) changes, so adding and revoking apply
without a restart; a file that becomes unreadable or malformed accepts no token until it is fixed (failing
closed: a half-done revocation must not leave the old tokens working). `scrapy-do-token` writes the file
atomically (a temporary file renamed over it), created with mode 0600.
"""

import argparse
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from twisted.logger import Logger

log = Logger(namespace="scrapy_do.web.tokens")

PREFIX = "sdo_"
ROLES = ("read-only", "full")
#: Methods a read-only token may use.
READ_METHODS = frozenset({b"GET", b"HEAD"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")
#: What a presented token may look like (RFC 6750's b64token, bounded); anything else is refused unhashed.
_TOKEN = re.compile(rb"[A-Za-z0-9._~+/-]{1,512}=*")


class TokenFileError(ValueError):
    """The tokens file cannot be read or holds a line that is not NAME:ROLE:SHA256HEX."""


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    digest: str


def new_token():
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token):
    """The SHA-256 hex digest stored for `token` (str or bytes)."""
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()


def parse(text, path="tokens-db"):
    """The tokens of a file's `text`, in file order; TokenFileError names the first bad line."""
    tokens, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise TokenFileError(f"{path} line {number}: expected NAME:ROLE:SHA256HEX")
        name, role, digest = parts
        if not _NAME.fullmatch(name):
            raise TokenFileError(f"{path} line {number}: {name[:70]!r} is not a token name "
                                 "(letters, digits, '.', '_', '-'; at most 64)")
        if role not in ROLES:
            raise TokenFileError(f"{path} line {number}: the role must be read-only or full, not {role[:20]!r}")
        if not _HEX.fullmatch(digest.lower()):
            raise TokenFileError(f"{path} line {number}: the hash must be 64 hex digits (a SHA-256)")
        if name in names:
            raise TokenFileError(f"{path} line {number}: the name {name!r} appears twice")
        names.add(name)
        tokens.append(Token(name, role, digest.lower()))
    return tokens


def read(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise TokenFileError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"{path} is not UTF-8 text") from None
    return parse(text, path)


def format_tokens(tokens):
    return "# Scrapy Do API tokens (NAME:ROLE:SHA256); manage with scrapy-do-token\n" + "".join(
        f"{t.name}:{t.role}:{t.digest}\n" for t in tokens)


class TokenStore:
    """The tokens of one file, read again whenever the file's stat changes (checked at each lookup)."""

    def __init__(self, path):
        self.path = Path(path)
        self._tokens = ()
        self._seen = None  # the stat signature of what _tokens came from; None: never read

    @classmethod
    def load(cls, path):
        """A store read from `path` now; TokenFileError if the file is unusable (a start-up error)."""
        store = cls(path)
        signature = store._signature()
        store._tokens = tuple(read(path))
        store._seen = signature
        log.info("[web] tokens-db: {count} token(s) in {path}", count=len(store._tokens), path=str(path))
        return store

    def _signature(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return "missing"
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self):
        signature = self._signature()
        if signature == self._seen:
            return
        self._seen = signature
        try:
            self._tokens = tuple(read(self.path))
        except TokenFileError as e:
            self._tokens = ()
            log.error("[web] tokens-db: {problem}; no token is accepted until it is fixed", problem=str(e))
        else:
            log.info("[web] tokens-db: {count} token(s) in {path}", count=len(self._tokens), path=str(self.path))

    def lookup(self, presented):
        """The Token whose hash is that of `presented` (bytes), or None; nothing about others leaks.

        Every stored hash is compared, in constant time, whatever matches: the cost does not depend on
        which token (if any) the presented one is.
        """
        self._refresh()
        if not _TOKEN.fullmatch(presented):
            return None
        digest = token_hash(presented).encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest.encode()):
                found = token
        return found


# -- scrapy-do-token ----------------------------------------------------------------------------------


def _write(path, tokens):
    """Replace `path` atomically; a new file gets mode 0600, an existing one keeps its mode and owner."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600 if st is None else st.st_mode & 0o777)
            if st is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), st.st_uid, st.st_gid)  # root editing the daemon user's file
            f.write(format_tokens(tokens))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _existing(path):
    return read(path) if Path(path).exists() else []


def _add(args):
    tokens = _existing(args.db)
    if not _NAME.fullmatch(args.name):
        raise TokenFileError(f"{args.name[:70]!r} is not a token name (letters, digits, '.', '_', '-'; at most 64)")
    if any(t.name == args.name for t in tokens):
        raise TokenFileError(f"{args.db} has a token named {args.name!r} already: revoke it first or pick "
                             "another name")
    token = new_token()
    role = "read-only" if args.read_only else "full"
    _write(args.db, [*tokens, Token(args.name, role, token_hash(token))])
    print(token)
    print(f"added {role} token {args.name!r} to {args.db}; it is shown only this once", file=sys.stderr)


def _list(args):
    for token in _existing(args.db):
        print(f"{token.name}\t{token.role}")


def _revoke(args):
    tokens = _existing(args.db)
    kept = [t for t in tokens if t.name != args.name]
    if len(kept) == len(tokens):
        raise TokenFileError(f"{args.db} has no token named {args.name!r} (see: scrapy-do-token --db "
                             f"{args.db} list)")
    _write(args.db, kept)
    print(f"revoked token {args.name!r}; the daemon refuses it from its next request", file=sys.stderr)


def parser():
    p = argparse.ArgumentParser(prog="scrapy-do-token", description="Manage the API tokens of [web] tokens-db. "
                                "A token is printed once, when it is added; the file keeps only its hash.")
    p.add_argument("--db", required=True, type=Path, help="the tokens file ([web] tokens-db)")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a token and print it")
    add.add_argument("name", help="what the token is for, e.g. ci-deploy")
    add.add_argument("--read-only", action="store_true", help="GET and HEAD only (default: full access)")
    add.set_defaults(run=_add)
    sub.add_parser("list", help="show the names and roles").set_defaults(run=_list)
    revoke = sub.add_parser("revoke", help="remove a token")
    revoke.add_argument("name")
    revoke.set_defaults(run=_revoke)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except TokenFileError as e:
        print(f"scrapy-do-token: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"scrapy-do-token: cannot write {args.db}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
