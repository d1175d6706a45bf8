"""Calls through the real server, SIPp on both legs (DESIGN sections 3 and 4).

Each test provisions its bindings in the store, starts its own server whose
outbound trunk is the SIPp UAS port, runs the UAS in the background and the
UAC in the foreground, and asserts both ended with every call successful and
that the server holds no call, dialog or transaction afterwards. The caller-ID
and privacy checks live in the UAS scenarios (SIPp `<ereg check_it>`), see
sipp_scenarios/README.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from b2bua.bindings.model import BindingSpec
from integration.calls import (
    G1,
    G2,
    UNKNOWN_X,
    A,
    B,
    N,
    X,
    Y,
    assert_calls,
    assert_flow,
    call_lab,
    sipp_runner,
    spec,
)
from integration.leaks import assert_no_leaks

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(90)]

HOLD = ["-d", "200"]  # talk time of uac_call.xml, ms

# Flows where the callee answers the INVITE with a non-2xx final (486, 487) run
# their B leg over TCP: on UDP the server's INVITE client transaction lives on
# for Timer D, 32 s whatever T1 is (RFC 3261 section 17.1.1.2), and every
# no-leak check would wait that long. One UDP test below covers that wait.
TCP_B_LEG: dict[str, Any] = {"uas_transport": "tcp"}
TIMER_D_S = 32


def run_flow(
    tmp_path: Path,
    bindings: Sequence[BindingSpec],
    *,
    uas: str | None,
    uac: str,
    caller: str,
    dialled: str,
    uas_calls: int = 1,
    sections: str = "",
    uac_extra: tuple[str, ...] = (),
    uas_transport: str = "udp",
    leak_timeout: float = 10.0,
) -> None:
    """One call: UAS (if any) in the background, UAC in the foreground, then no leaks."""
    lab_context = call_lab(tmp_path, bindings, sections=sections, uas_transport=uas_transport)
    with lab_context as lab, sipp_runner(lab, tmp_path) as sipp:
        callee = sipp.start_uas(uas, calls=uas_calls) if uas else None
        result = sipp.run_uac(uac, caller=caller, dialled=dialled, extra=uac_extra)
        assert_flow(result, callee, uas_calls=uas_calls)
        assert_no_leaks(lab.server, timeout=leak_timeout)


AXB = [spec("AXB", a=A, b=B, x=X)]


# --- AXB: caller ID, privacy, both directions --------------------------------------


def test_axb_a_calls_x_reaches_b_who_sees_x(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_axb_b.xml", uac="uac_call.xml", caller=A, dialled=X,
        uac_extra=tuple(HOLD),
    )  # fmt: skip


def test_axb_b_calls_x_reaches_a_who_sees_x(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_axb_a.xml", uac="uac_call.xml", caller=B, dialled=X,
        uac_extra=tuple(HOLD),
    )  # fmt: skip


# --- call flows: cancel, busy, no answer, hang-up from the callee, hold, 100rel ------


def test_caller_cancels_while_callee_rings(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_ring_cancelled.xml", uac="uac_cancel.xml", caller=A, dialled=X,
        **TCP_B_LEG,
    )  # fmt: skip


def test_busy_callee_486_is_relayed(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_busy.xml", uac="uac_busy.xml", caller=A, dialled=X, **TCP_B_LEG
    )


def test_busy_callee_over_udp_leaves_no_transaction_after_timer_d(tmp_path: Path) -> None:
    # The same flow with the B leg on UDP: the server's INVITE client transaction
    # absorbs retransmitted 486s for Timer D (32 s, RFC 3261 section 17.1.1.2),
    # so the no-leak check waits that long.
    run_flow(
        tmp_path, AXB, uas="uas_busy.xml", uac="uac_busy.xml", caller=A, dialled=X,
        leak_timeout=TIMER_D_S + 8,
    )  # fmt: skip


def test_no_answer_server_cancels_callee_and_answers_408(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_ring_cancelled.xml", uac="uac_ring_timeout.xml",
        caller=A, dialled=X, sections="[calls]\nring_timeout_s = 1.0\n", **TCP_B_LEG,
    )  # fmt: skip


def test_callee_hangs_up(tmp_path: Path) -> None:
    run_flow(tmp_path, AXB, uas="uas_callee_bye.xml", uac="uac_callee_bye.xml", caller=A, dialled=X)


def test_caller_puts_callee_on_hold(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_hold_by_caller.xml", uac="uac_hold_by_caller.xml",
        caller=A, dialled=X,
    )  # fmt: skip


def test_callee_puts_caller_on_hold(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXB, uas="uas_hold_by_callee.xml", uac="uac_hold_by_callee.xml",
        caller=A, dialled=X,
    )  # fmt: skip


def test_reliable_provisional_is_pracked_end_to_end(tmp_path: Path) -> None:
    run_flow(tmp_path, AXB, uas="uas_prack.xml", uac="uac_prack.xml", caller=A, dialled=X)


# --- refusals ------------------------------------------------------------------------


def test_unknown_middle_number_gets_404(tmp_path: Path) -> None:
    run_flow(tmp_path, AXB, uas=None, uac="uac_not_found.xml", caller=A, dialled=UNKNOWN_X)


def test_non_participant_gets_403(tmp_path: Path) -> None:
    run_flow(tmp_path, AXB, uas=None, uac="uac_forbidden.xml", caller=N, dialled=X)


def test_expired_binding_gets_404(tmp_path: Path) -> None:
    bindings = [spec("AXB", a=A, b=B, x=X, ttl_s=1)]
    with call_lab(tmp_path, bindings) as lab, sipp_runner(lab, tmp_path) as sipp:
        time.sleep(max(0.0, lab.created_at + 2.0 - time.monotonic()))
        result = sipp.run_uac("uac_not_found.xml", caller=A, dialled=X)
        assert_calls(result, 1)
        assert_no_leaks(lab.server)


# --- the other modes -----------------------------------------------------------------

AXYB = [spec("AXYB", a=A, b=B, x=X, y=Y)]


def test_axyb_a_calls_x_reaches_b_who_sees_y(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXYB, uas="uas_axyb_b.xml", uac="uac_call.xml", caller=A, dialled=X,
        uac_extra=tuple(HOLD),
    )  # fmt: skip


def test_axyb_b_calls_y_reaches_a_who_sees_x(tmp_path: Path) -> None:
    run_flow(
        tmp_path, AXYB, uas="uas_axyb_a.xml", uac="uac_call.xml", caller=B, dialled=Y,
        uac_extra=tuple(HOLD),
    )  # fmt: skip


def test_axn_stranger_reaches_a(tmp_path: Path) -> None:
    run_flow(
        tmp_path, [spec("AXN", a=A, x=X)], uas="uas_axn_a.xml", uac="uac_call.xml",
        caller=N, dialled=X, uac_extra=tuple(HOLD),
    )  # fmt: skip


GXB = [spec("GXB", group=(G1, G2), b=B, x=X)]


def test_gxb_member_calls_x_reaches_b(tmp_path: Path) -> None:
    run_flow(
        tmp_path, GXB, uas="uas_gxb_b.xml", uac="uac_call.xml", caller=G1, dialled=X,
        uac_extra=tuple(HOLD),
    )  # fmt: skip


def test_gxb_b_calls_x_hunts_the_group_in_order(tmp_path: Path) -> None:
    # G1 answers 486, the server moves on to G2, who answers: two UAS calls, one UAC call.
    run_flow(
        tmp_path, GXB, uas="uas_gxb_hunt.xml", uac="uac_call.xml", caller=B, dialled=X,
        uas_calls=2, uac_extra=tuple(HOLD), **TCP_B_LEG,
    )  # fmt: skip
