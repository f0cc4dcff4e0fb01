"""TLS for the web server, with certificates re-read when they change on disk.

Let's Encrypt and friends replace the files every few months; each new
connection checks their modification times (one stat per file) and loads the
new pair, so no restart is needed. A broken renewal keeps the old pair.
"""

import os

from twisted.logger import Logger

from scrapy_do.errors import StartupError

log = Logger(namespace="scrapy_do.web.tls")


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise StartupError(f"[web] {what}: cannot read {path}: {e.strerror}") from None


class ReloadingContextFactory:
    def __init__(self, key, cert, chain=None):
        self.paths = [p for p in (key, cert, chain) if p]
        self.key, self.cert, self.chain = key, cert, chain
        self._stamp = None
        self._context = None
        self._load()

    def _stamps(self):
        return tuple(os.stat(p).st_mtime_ns for p in self.paths)

    def _load(self):
        from twisted.internet import ssl  # only an https daemon loads pyOpenSSL

        key, cert = _read(self.key, "key"), _read(self.cert, "cert")
        stamp = self._stamps()
        try:
            private = ssl.PrivateCertificate.loadPEM(cert + b"\n" + key)
            extra = []
            if self.chain:
                data = _read(self.chain, "chain")
                stamp = self._stamps()
                extra = [c.original for c in _split_pem(data)]
            options = ssl.CertificateOptions(privateKey=private.privateKey.original,
                                             certificate=private.original, extraCertChain=extra or None)
            context = options.getContext()
        except Exception as e:
            raise StartupError(f"[web] key/cert: cannot use {self.cert} with {self.key}: {e}") from None
        self._context, self._stamp = context, stamp

    def getContext(self):
        try:
            if self._stamps() != self._stamp:
                self._load()
                log.info("reloaded TLS certificate {cert}", cert=str(self.cert))
        except (StartupError, OSError) as e:
            log.error("keeping the old TLS certificate: {e}", e=e)
            try:
                self._stamp = self._stamps()  # don't retry (and log) on every connection
            except OSError:
                pass
        return self._context


def _split_pem(data):
    from twisted.internet import ssl

    marker = b"-----END CERTIFICATE-----"
    parts = [p + marker for p in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in p]
    return [ssl.Certificate.loadPEM(p) for p in parts]
