"""The soak mode (``python -m tests.soak``) in a short run, so it keeps working: 20 seconds, a
random fault every 1.5 s on average, and nothing lost."""

import pytest

from tests.soak import main


@pytest.mark.slow
def test_short_soak_with_random_faults_loses_nothing(capsys, tmp_path):
    status = main(["--seconds", "20", "--fault-every", "1.5", "--seed", "7", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out + (tmp_path / "collector.stderr").read_text()[-3000:]
    assert "RESULT: nothing lost" in out
    injected = int(out.split("faults injected: ")[1].split()[0])
    assert injected >= 5
    for exchange in ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX"):
        assert f"\n{exchange}" in out
