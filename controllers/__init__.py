"""Exchange controllers: one class per exchange, each in its own file.

``CONTROLLERS`` maps the lower-case exchange name used on the command line to its class.
"""

from controllers.base import Controller, ControllerStats
from controllers.bithumb import BithumbController
from controllers.coinone import CoinoneController
from controllers.gopax import GopaxController
from controllers.korbit import KorbitController
from controllers.rest import RestPollingController
from controllers.upbit import UpbitController
from controllers.ws import WSController

CONTROLLERS: dict[str, type[Controller]] = {
    "upbit": UpbitController,
    "bithumb": BithumbController,
    "coinone": CoinoneController,
    "korbit": KorbitController,
    "gopax": GopaxController,
}

__all__ = ["CONTROLLERS", "BithumbController", "CoinoneController", "Controller",
           "ControllerStats", "GopaxController", "KorbitController", "RestPollingController",
           "UpbitController", "WSController"]
