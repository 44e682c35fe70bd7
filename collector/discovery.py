"""Which markets to collect: the ones named, every listed one (``--symbols ALL``), or the ``N``
with the largest 24-hour traded value (``--top N``), per exchange, from its public REST API."""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

from core.errors import ConfigError, MessageError
from core.model import Market
from controllers.http import RetryPolicy

log = logging.getLogger("collector.main")
_TAG = {"tag": "MAIN"}

RETRIES = RetryPolicy(jitter=False)
"""The waits between discovery attempts: 1 s, 2 s, 4 s … (without jitter: discovery runs once,
at start-up, before any connection), and after HTTP 429/418 what ``Retry-After`` says (418
without it: the ban delay). The requests' own timeouts are the controller class's."""


def _retry(what: str, call: Callable, attempts: int, wait: Callable[[float], bool]):
    """``call()``, tried ``attempts`` times, :data:`RETRIES` apart; ``wait(s)`` returns ``True``
    to give up early (a stop was requested).

    Every failure is tried again within ``attempts``, those the policy does not retry (an HTTP
    4xx, an error body, an unreadable list) too: a list that cannot be read is a reason not to
    start, reported once.

    Raises:
        ConfigError: every attempt failed (the last error is named), or a stop was requested.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (MessageError, KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = str(exc) if isinstance(exc, MessageError) else f"{type(exc).__name__}: {exc}"
            log.warning("%s failed (attempt %d of %d): %s", what, attempt, attempts, detail,
                        extra=_TAG)
            if attempt == attempts:
                raise ConfigError(f"{what} failed {attempts} times; last error: {detail}") from None
            if wait(RETRIES.delay(exc, attempt - 1, persist=True)):
                raise ConfigError(f"stopped while retrying: {what}") from None
    raise AssertionError("unreachable")


def resolve_markets(controller: type, env: Mapping[str, str], currency: str,
                    symbols: Sequence[str] | None, top: int | None, *, attempts: int = 3,
                    wait: Callable[[float], bool] = lambda s: False) -> list[Market]:
    """The markets ``controller`` (a controller class) should collect.

    Args:
        symbols: base currencies, upper case; ``None`` means every market the exchange lists
            with quote ``currency``.
        top: keep only this many markets, those with the largest 24-hour traded value in the
            quote currency (from the exchange's tickers); ``None`` keeps all.
        attempts: tries per REST request before giving up.
        wait: sleeps between tries; returns ``True`` if the run is being stopped.

    Named symbols without ``top`` need no request. Named symbols the exchange does not list are
    logged and left out when a list was fetched.

    Raises:
        ConfigError: the list or the tickers could not be fetched, the exchange has no market
            list or tickers here, or no market is left.
    """
    name = controller.exchange
    if symbols is not None and top is None:
        return [Market(symbol, currency) for symbol in symbols]
    try:
        return _resolve(controller, env, currency, symbols, top, attempts, wait)
    except NotImplementedError:
        raise ConfigError(f"{name} has no market list or tickers in this collector: name its "
                          "markets with --symbols (without --top) or --markets") from None


def _resolve(controller: type, env: Mapping[str, str], currency: str,
             symbols: Sequence[str] | None, top: int | None, attempts: int,
             wait: Callable[[float], bool]) -> list[Market]:
    name = controller.exchange
    listed = _retry(f"{name} market list", lambda: controller.list_markets(env, currency),
                    attempts, wait)
    pool = list(dict.fromkeys(listed))
    if symbols is not None:
        known = {m.base for m in pool}
        missing = [s for s in symbols if s not in known]
        if missing:
            log.warning("%s does not list %s: left out", name,
                        ", ".join(f"{currency}-{s}" for s in missing), extra=_TAG)
        pool = [Market(s, currency) for s in symbols if s in known]
    if top is not None and pool:
        values = _retry(f"{name} tickers", lambda: controller.traded_values(env, pool),
                        attempts, wait)
        pool = sorted(pool, key=lambda m: values.get(m, 0.0), reverse=True)[:top]
        log.info("%s top %d by 24 h traded value: %s", name, len(pool),
                 ", ".join(f"{m.base} ({values.get(m, 0.0):,.0f} {currency})" for m in pool),
                 extra=_TAG)
    if not pool:
        raise ConfigError(f"{name} lists no {currency} market to collect")
    log.info("%s: %d %s market(s) to collect", name, len(pool), currency, extra=_TAG)
    return pool


__all__ = ["resolve_markets"]
