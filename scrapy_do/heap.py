"""The garbage collector's full passes, moved to moments no request waits on.

A full pass walks every tracked object: ~30 ms once a push has imported and built what the daemon keeps
(bench/lag.py's probe saw 32 ms on a status request after the first push). Collecting once and then
freezing what survives (gc.freeze) keeps those objects out of later passes, which stay short.
"""

import gc

from scrapy_do.events import ProjectPushed

#: After a push's answer has gone out: the collection must not delay it.
AFTER_PUSH = 0.2


def settle():
    gc.collect()
    gc.freeze()


class SettleAfterPush:
    """A controller listener: the heap is settled once after each push (one call for a burst of pushes)."""

    def __init__(self, reactor, settle=settle):
        self._reactor = reactor
        self._settle = settle
        self._call = None

    def __call__(self, event):
        if isinstance(event, ProjectPushed) and (self._call is None or not self._call.active()):
            self._call = self._reactor.callLater(AFTER_PUSH, self._settle)
