"""Loopback servers that speak the exchanges' real protocols: the simulator (``python -m
collector.simulator``) and the test suite's exchanges (never the internet).

They need the ``websockets`` package (``pip install -e ".[sim]"``) and the real messages in the
checkout's ``tests/fixtures``.

* :class:`~collector.simulator.ws.LoopbackWSServer` / :class:`~collector.simulator.http.LoopbackHTTPServer`:
  threaded servers on 127.0.0.1 with a random port, recording what they sent and received;
* one subclass per exchange (``upbit.UpbitServer``, ``bithumb.BithumbServer``);
* :mod:`~collector.simulator.frames`: real fixture messages, and books generated from them.
"""
