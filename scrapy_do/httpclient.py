"""The daemon's outgoing HTTP (the Ray Jobs API, webhook receivers): treq over a pool of its own."""


def quiet_client(reactor, connect_timeout=10, per_host=4, tls=None):
    """A treq HTTPClient with persistent connections whose factory does not log each connection it makes;
    its pool is `client.pool` (closeCachedConnections at a stop). `tls`: an IPolicyForHTTPS, else Agent's."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

    class QuietFactory(_HTTP11ClientFactory):
        noisy = False

    pool = HTTPConnectionPool(reactor)
    pool._factory = QuietFactory
    pool.maxPersistentPerHost = per_host
    extra = {} if tls is None else {"contextFactory": tls}
    client = HTTPClient(Agent(reactor, connectTimeout=connect_timeout, pool=pool, **extra))
    client.pool = pool
    return client
