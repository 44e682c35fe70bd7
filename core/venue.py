"""A venue's facts, declared once next to its parser (``VENUE`` in each ``controllers/<venue>.py``).

Everything the rest of the product needs to know about an exchange comes from its
:class:`Venue`: the registry of ``--exchanges``, the Korean and KRW venues, the derivative venues,
the default quote currency, the taker fee table of the signals, the endpoint URLs and the names
of the environment variables that override them, the per-connection market limits, and the
documentation's venue table (checked against the declarations by ``tests/test_docs.py``).

Example (Binance USD-M futures: books on one WebSocket path, tickers and trades on another, REST
snapshots and market lists on a third endpoint)::

    VENUE = Venue(
        name="binance_futures", label="Binance USD-M", region="global", quote="USDT",
        kind="derivative", taker_fee=0.0005, fee_source="binance.com/en/fee/futureFee",
        endpoints=(Endpoint("ws", "wss://fstream.binance.com/public/stream", ("orderbook",)),
                   Endpoint("market_ws", "wss://fstream.binance.com/market/stream",
                            ("ticker", "trade")),
                   Endpoint("rest", "https://fapi.binance.com")),
        max_markets_per_connection=200, connect_interval=1.0)

The environment variable of an endpoint is ``<NAME>_<ROLE>_URL`` in upper case
(``BINANCE_FUTURES_MARKET_WS_URL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from core.errors import ConfigError
from core.model import CHANNELS

REGIONS = ("korea", "global")
"""``korea``: a Korean exchange quoted in KRW; ``global``: one the Korean prices are compared with."""
KINDS = ("spot", "derivative")
"""``derivative``: perpetual futures and swaps, never a leg of the kimchi premium or arbitrage."""


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a venue.

    Fields:
        role: what it is for, lower case: ``"ws"`` (the main WebSocket), ``"rest"`` (the public REST
            API: market lists, tickers, snapshots, polled books), or another WebSocket or REST
            endpoint (``"market_ws"``); it names the environment variable ``<NAME>_<ROLE>_URL``.
        url: the exchange's production URL (a base URL for REST).
        channels: the channels of :data:`core.model.CHANNELS` collected through it; ``()`` for an
            endpoint only asked for snapshots, market lists or tokens.
    """

    role: str
    url: str
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"endpoint {self.role!r}: unknown channel(s) {sorted(unknown)}")


@dataclass(frozen=True)
class Venue:
    """The facts of one exchange that the product uses outside its parser.

    Fields:
        name: the lower-case name used on the command line (``"binance_futures"``); its upper
            case (:attr:`exchange`) is the ``exchange`` column of every stored row.
        label: the name people know it by (``"Binance USD-M"``).
        region: one of :data:`REGIONS`.
        quote: the quote currency of its markets when the run names none (``--currency``).
        kind: one of :data:`KINDS`.
        taker_fee: the published base taker fee, a fraction of the traded value (0.0005 = 0.05 %);
            overridable at run time (``--fees``).
        fee_source: where the fee is published.
        endpoints: its endpoints; the first one carrying ``orderbook`` is the book feed.
        max_markets_per_connection: the most markets one WebSocket connection carries
            (``None``: no limit; all markets on one connection).
        connect_interval: least seconds between two connection attempts (the venue's limit).
        subscribe_interval: least seconds between two subscribe messages on one connection.
        usdt_krw_rate: its ``USDT``/``KRW`` market's mid is the live rate of the kimchi premium
            and of arbitrage against USDT (Upbit); the market is added to the run when signals
            need it.

    Raises:
        ValueError: an unknown region, kind or channel, a role used twice, or no endpoint
            carrying ``orderbook``.
    """

    name: str
    label: str
    region: str
    quote: str
    taker_fee: float
    fee_source: str
    endpoints: tuple[Endpoint, ...]
    kind: str = "spot"
    max_markets_per_connection: int | None = None
    connect_interval: float = 0.2
    subscribe_interval: float = 0.0
    usdt_krw_rate: bool = False

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"{self.name}: region must be one of {REGIONS}, got {self.region!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        roles = [e.role for e in self.endpoints]
        if len(set(roles)) != len(roles):
            raise ValueError(f"{self.name}: an endpoint role is declared twice: {roles}")
        if not any("orderbook" in e.channels for e in self.endpoints):
            raise ValueError(f"{self.name}: no endpoint carries the orderbook channel")

    @property
    def exchange(self) -> str:
        """The upper-case name stored in every row (``"BINANCE_FUTURES"``)."""
        return self.name.upper()

    @property
    def korean(self) -> bool:
        """A Korean exchange (quoted in KRW)."""
        return self.region == "korea"

    @property
    def derivative(self) -> bool:
        return self.kind == "derivative"

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel the venue offers, in :data:`core.model.CHANNELS` order."""
        offered = {c for e in self.endpoints for c in e.channels}
        return tuple(c for c in CHANNELS if c in offered)

    def endpoint(self, role: str) -> Endpoint:
        """The endpoint of ``role``.

        Raises:
            KeyError: the venue has no such endpoint.
        """
        for endpoint in self.endpoints:
            if endpoint.role == role:
                return endpoint
        raise KeyError(f"{self.name} has no {role!r} endpoint")

    def env_var(self, role: str) -> str:
        """The environment variable that overrides the URL of endpoint ``role``
        (``UPBIT_WS_URL``)."""
        return f"{self.exchange}_{role.upper()}_URL"

    def url(self, role: str, env: Mapping[str, str]) -> str:
        """The URL of endpoint ``role``: ``env[env_var(role)]`` when set, else the declared one."""
        return env.get(self.env_var(role)) or self.endpoint(role).url

    @property
    def env_vars(self) -> tuple[str, ...]:
        """The environment variables of every endpoint, in declaration order."""
        return tuple(self.env_var(e.role) for e in self.endpoints)


def registry(venues: Iterable[Venue]) -> dict[str, Venue]:
    """Venues by name, checking that no name is declared twice.

    Raises:
        ConfigError: two declarations share a name.
    """
    by_name: dict[str, Venue] = {}
    for venue in venues:
        if venue.name in by_name:
            raise ConfigError(f"venue {venue.name!r} declared twice")
        by_name[venue.name] = venue
    return by_name
