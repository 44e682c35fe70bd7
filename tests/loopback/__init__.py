"""Loopback servers that speak the exchanges' real protocols, for tests (never the internet).

* :class:`~tests.loopback.ws.LoopbackWSServer` / :class:`~tests.loopback.http.LoopbackHTTPServer`:
  threaded servers on 127.0.0.1 with a random port, recording what they sent and received;
* one subclass per exchange (``upbit.UpbitServer``, ``bithumb.BithumbServer``);
* :mod:`~tests.loopback.frames`: real fixture messages, and books generated from them.
"""
