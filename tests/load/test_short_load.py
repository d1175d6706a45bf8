"""Short load in CI: 50 calls per second for 20 s through the real server.

1,000 calls A -> X -> B with a 1 s talk time (SIPp load_uac.xml / load_uas.xml,
200 bindings from the injection file; the UAS checks caller ID and privacy on
every INVITE). Every call must succeed on both sides, and afterwards the server
must hold no call, dialog or transaction (its /metrics gauges back to zero).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from load.conftest import FAST_TIMERS

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(150)]

RATE = 50
SECONDS = 20
CALLS = RATE * SECONDS
ZERO = {"b2bua_active_calls": 0.0, "b2bua_dialogs_active": 0.0, "b2bua_transactions_active": 0.0}


def test_50_cps_for_20_s_without_failures_and_state_back_to_zero(
    tmp_path: Path, kit: ModuleType
) -> None:
    with kit.lab(tmp_path / "lab", bindings=200, extra=FAST_TIMERS) as lab:
        uac, cpu_s, wall_s = kit.run_calls(lab, rate=RATE, calls=CALLS, hold_s=1.0)
        state = lab.server.wait_idle(timeout=20)  # the UAS still answers keepalives
        uas = lab.uas.stop()
        print(f"\n{uac.line()}\nUAS: {uas.line()}\nserver CPU {cpu_s:.1f} s in {wall_s:.1f} s")
        assert uac.returncode == 0, uac.errors
        assert (uac.successful, uac.failed) == (CALLS, 0), uac.errors
        assert uas.failed == 0 and uas.successful >= CALLS, uas.errors
        assert state is not None, "the server has no /metrics"
        assert {name: state.get(name) for name in ZERO} == ZERO
