"""Start the order book collector: ``python run_controller.py --help``."""

import sys

from collector.cli import main

if __name__ == "__main__":
    sys.exit(main())
