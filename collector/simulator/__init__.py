"""Loopback servers that speak the exchanges' real protocols: the simulator (``python -m
collector.simulator``) and the test suite's exchanges (never the internet).

They need the ``websockets`` package (``pip install "kr-orderbook-collector[sim]"``); the real
messages they start from are package data (``messages/``, with ``messages/SOURCES.md``).

* :class:`~collector.simulator.ws.LoopbackWSServer` / :class:`~collector.simulator.http.LoopbackHTTPServer`:
  threaded servers on 127.0.0.1 with a random port, recording what they sent and received;
* one server per exchange protocol: the Korean ones in ``upbit``, ``bithumb``, ``coinone``,
  ``korbit``, ``gopax`` (and their market lists in ``markets``), the global ones in
  :mod:`~collector.simulator.recorded` (which replay a recorded session given to them);
* :mod:`~collector.simulator.world` and :mod:`~collector.simulator.live`: one reference price
  per asset and the thirteen exchanges streaming live books, tickers and trades around it
  (what ``python -m collector.simulator`` serves);
* :mod:`~collector.simulator.frames`: the package data, and books generated from real books.
"""
