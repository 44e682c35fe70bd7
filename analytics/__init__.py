"""Signals computed from the live books: kimchi premiums and net arbitrage (:mod:`analytics.signals`).

It depends only on :mod:`core`; the collector feeds it books and hands its rows to storage.
"""
