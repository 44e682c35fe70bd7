"""Exchange controllers: one file per venue, each declaring its :class:`core.venue.Venue` once
(``VENUE``) next to the class that parses its book feed.

Everything else is derived from those declarations: ``CONTROLLERS`` maps the lower-case venue
name used on the command line to the class of its book feed (feeds of its other endpoints, such
as Bithumb's ticker and trade stream, run beside it: :meth:`Controller.feeds`), ``VENUES`` holds
the declarations, ``KOREAN`` the default ``--exchanges``.
"""

from core.venue import Venue, registry
from controllers.base import Controller
from controllers.health import ControllerStats
from controllers.binance import BinanceController
from controllers.binance_futures import BinanceFuturesController
from controllers.bithumb import BithumbController, BithumbStreamController
from controllers.bitmex import BitmexController
from controllers.bybit import BybitController
from controllers.coinone import CoinoneController
from controllers.gateio import GateioController
from controllers.gopax import GopaxController
from controllers.korbit import KorbitController
from controllers.kraken import KrakenController
from controllers.kucoin import KucoinController
from controllers.okx import OkxController
from controllers.rest import RestPollingController
from controllers.upbit import UpbitController
from controllers.ws import WSController

_BOOK_FEEDS: tuple[type[Controller], ...] = (
    UpbitController, BithumbController, CoinoneController, KorbitController, GopaxController,
    BinanceController, BinanceFuturesController, OkxController, BybitController, GateioController,
    KrakenController, KucoinController, BitmexController)

VENUES: dict[str, Venue] = registry([cls.venue for cls in _BOOK_FEEDS])
"""Every venue's declaration by lower-case name, Korean venues first."""

CONTROLLERS: dict[str, type[Controller]] = {cls.venue.name: cls for cls in _BOOK_FEEDS}
"""The class of each venue's book feed by lower-case name (the names of ``--exchanges``)."""

BY_EXCHANGE: dict[str, Venue] = {venue.exchange: venue for venue in VENUES.values()}
"""The same declarations by upper-case exchange name, as stored in every row (``"UPBIT"``)."""

KOREAN: tuple[str, ...] = tuple(name for name, venue in VENUES.items() if venue.korean)
"""The default ``--exchanges``: the Korean exchanges, quoted in KRW."""

__all__ = ["BY_EXCHANGE", "CONTROLLERS", "KOREAN", "VENUES", "BinanceController", "BinanceFuturesController",
           "BithumbController", "BithumbStreamController", "BitmexController", "BybitController",
           "CoinoneController", "Controller", "ControllerStats", "GateioController",
           "GopaxController", "KorbitController", "KrakenController", "KucoinController",
           "OkxController", "RestPollingController", "UpbitController", "WSController"]
