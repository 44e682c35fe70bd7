"""The full-scale benchmark still runs and measures what it says: a tiny run (3 markets per
venue, a few seconds) stores books of every venue with nothing lost. Figures are not asserted:
speed is the benchmark's to print, not a test's to judge."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_fullscale_benchmark_runs_and_stores_books():
    done = subprocess.run([sys.executable, "-m", "benchmarks.fullscale", "--markets", "3",
                           "--seconds", "4", "--ramp-steps", "1", "--ramp-seconds", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    base = re.search(r"^base, all venues\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+(\d+)\s", done.stdout, re.M)
    assert base, done.stdout
    markets, frames, books, lost = (int(g.replace(",", "")) for g in base.groups())
    assert markets == 13 * 3 and frames > 0 and books > 0 and lost == 0, done.stdout
    assert re.search(r"B per stored level", done.stdout) and "parse-only" in done.stdout
