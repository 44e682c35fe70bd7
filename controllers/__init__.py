"""Exchange controllers: one class per exchange, each in its own file.

``CONTROLLERS`` maps the lower-case exchange name used on the command line to its class (a
companion, such as Bithumb's ticker and trade stream, runs with its exchange and is not listed).
"""

from controllers.base import Controller, ControllerStats
from controllers.binance import BinanceController
from controllers.binance_futures import BinanceFuturesController, BinanceFuturesStreamController
from controllers.bithumb import BithumbController
from controllers.bithumb_stream import BithumbStreamController
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

CONTROLLERS: dict[str, type[Controller]] = {
    "upbit": UpbitController,
    "bithumb": BithumbController,
    "coinone": CoinoneController,
    "korbit": KorbitController,
    "gopax": GopaxController,
    "binance": BinanceController,
    "binance_futures": BinanceFuturesController,
    "okx": OkxController,
    "bybit": BybitController,
    "gateio": GateioController,
    "kraken": KrakenController,
    "kucoin": KucoinController,
    "bitmex": BitmexController,
}

KOREAN = ("upbit", "bithumb", "coinone", "korbit", "gopax")
"""The default ``--exchanges``: the Korean exchanges, quoted in KRW."""

__all__ = ["CONTROLLERS", "KOREAN", "BinanceController", "BinanceFuturesController", "BinanceFuturesStreamController", "BithumbController", "BithumbStreamController", "BitmexController", "BybitController", "CoinoneController", "Controller",
           "ControllerStats", "GateioController", "GopaxController", "KorbitController", "KrakenController", "KucoinController", "OkxController", "RestPollingController",
           "UpbitController", "WSController"]
