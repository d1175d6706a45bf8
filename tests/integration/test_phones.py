"""Two real SIP phones (pjsua2) call each other through the real `b2bua serve`.

Phone A (the caller, real number A) dials the middle number X at the server;
the server forwards the call to its outbound trunk, which is phone B. B must see
X as the caller and never A's number; A plays a 1 kHz tone, B records what it
hears, and the recording must carry the tone (RTP flows directly between the
phones because the SDP passes through). B hangs up; both sides end and the
server logs a normal end released by the callee.

CI sets B2BUA_REQUIRE_TOOLS=1 so that a missing pjsua2 fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from tooling import tools_required

from b2bua.bindings.model import BindingSpec
from b2bua.bindings.service import BindingService
from b2bua.store import open_store
from integration.server import Server, free_sip_port, start_process
from integration.tone import analyse, write_tone

if TYPE_CHECKING:
    from integration.phones import Phone, PhoneLab

pytestmark = [pytest.mark.phone, pytest.mark.timeout(60)]

A_NUMBER = "13812345678"
B_NUMBER = "13987654321"
X_NUMBER = "700100000000001"
UNKNOWN_X = "700999999999999"
TONE_HZ = 1000.0
TALK_S = 2.0


def require_module(name: str) -> ModuleType:
    """Import `name`; skip the test if missing, or fail when B2BUA_REQUIRE_TOOLS=1
    (the module counterpart of `tooling.require_tool`)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"python module {name} is not installed ({exc})"
        if tools_required():
            pytest.fail(f"{message} and B2BUA_REQUIRE_TOOLS=1", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PhoneLab]:
    """The pjsua2 endpoint (null audio device); destroyed whatever happens."""
    require_module("pjsua2")
    from integration.phones import PhoneLab

    phones = PhoneLab(tmp_path / "pjsua.log")
    try:
        yield phones
    finally:
        phones.close()


async def provision(db_path: Path) -> str:
    """A tenant owning X and an AXB binding A <-> B on it; returns X."""
    store = await open_store(f"sqlite:///{db_path}")
    try:
        service = BindingService(store)
        await service.start(background=False)
        try:
            tenant, _ = await service.create_tenant("phones", actor="test")
            await service.import_numbers(tenant.id, [X_NUMBER], actor="test")
            spec = BindingSpec(mode="AXB", a=A_NUMBER, b=B_NUMBER, ttl_s=600, order_id="o1")
            binding = await service.create_binding(tenant.id, spec, actor="test")
        finally:
            await service.close()
    finally:
        await store.close()
    return binding.x


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[tuple[str, int]], Server]]:
    """Factory: start `b2bua serve` with the binding provisioned and its outbound
    trunk at `trunk` (phone B). Stopped afterwards; it must exit 0."""
    servers: list[Server] = []

    def start(trunk: tuple[str, int]) -> Server:
        directory = tmp_path / f"node{len(servers)}"
        directory.mkdir()
        assert asyncio.run(provision(directory / "b2bua.db")) == X_NUMBER
        trunks = (
            '[[trunks]]\nname = "phones"\n'
            f'address = "udp:{trunk[0]}:{trunk[1]}"\n'
            'inbound_from = ["127.0.0.1/32"]\n'
        )
        server = start_process(directory, trunks=trunks)
        servers.append(server)
        return server

    yield start
    for server in servers:
        code = server.stop()
        assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()}"


def wait_for_log(server: Server, event: str, timeout: float = 3.0) -> list[dict[str, object]]:
    """The server's log events named `event`, waiting until there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in server.log_events() if e.get("event") == event]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def sdp_of(message: str) -> str:
    """The body of a SIP message (its SDP)."""
    _, _, body = message.replace("\r\n", "\n").partition("\n\n")
    return body


def audio_address(sdp: str) -> tuple[str, int]:
    """(c= address, m=audio port) of an SDP."""
    connection = re.search(r"^c=IN IP4 (\S+)", sdp, re.MULTILINE)
    media = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    assert connection and media, f"no audio address in SDP:\n{sdp}"
    return connection.group(1), int(media.group(1))


def rtp_address(phone: Phone) -> tuple[str, int]:
    """Where `phone`'s only call receives RTP (its local media transport)."""
    (call,) = phone.calls()
    host, _, port = call.getMedTransportInfo(0).localRtpName.rpartition(":")
    return host, int(port)


def test_call_through_server_carries_tone_and_hides_caller(
    lab: PhoneLab, serve: Callable[[tuple[str, int]], Server], tmp_path: Path
) -> None:
    phone_a = lab.phone("A", A_NUMBER)
    phone_b = lab.phone("B", B_NUMBER)
    phone_a.play(write_tone(tmp_path / "tone.wav", frequency=TONE_HZ, seconds=1.0))
    phone_b.record_to(tmp_path / "heard_by_b.wav")
    server = serve(phone_b.address)

    call = phone_a.call(f"sip:{X_NUMBER}@127.0.0.1:{server.sip_port}")
    lab.poll(
        lambda: bool(phone_b.incoming) and phone_b.incoming[0].confirmed and call.confirmed,
        timeout=8,
        what="B to ring, answer and both sides to be confirmed",
    )
    (answered,) = phone_b.incoming

    # B sees X as the caller, and nothing B received mentions A's number.
    assert X_NUMBER in answered.events.remote_uri, answered.events.remote_uri
    assert A_NUMBER not in answered.events.remote_uri
    assert A_NUMBER not in answered.events.remote_contact
    invite = answered.events.received[0]
    assert invite.startswith(f"INVITE sip:{B_NUMBER}@"), invite
    assert call.events.received, "A received no response within the call"

    # SDP passes through: each side's c=/m= point at the other phone's RTP socket,
    # so RTP flows directly between the phones, with the codec they agreed on.
    lab.poll(
        lambda: call.events.media_active and answered.events.media_active,
        timeout=3,
        what="audio media active on both phones",
    )
    assert audio_address(sdp_of(invite)) == rtp_address(phone_a), sdp_of(invite)
    answer = next(m for m in call.events.received if m.startswith("SIP/2.0 200"))
    assert audio_address(sdp_of(answer)) == rtp_address(phone_b), sdp_of(answer)
    (codec,) = {call.getStreamInfo(0).codecName, answered.getStreamInfo(0).codecName}
    assert codec == "PCMA", codec

    lab.run_for(TALK_S)

    answered.hang_up()
    lab.poll(
        lambda: call.disconnected and answered.disconnected,
        timeout=5,
        what="both phones to see DISCONNECTED",
    )
    assert call.events.last_status == 200, call.events
    assert any(m.startswith("BYE ") for m in call.events.received), "A got no BYE"

    # Privacy both ways over the whole call (INVITE, ACK, BYE; 18x, 200 and SDP).
    for message in answered.events.received:
        assert A_NUMBER not in message, message
    for message in call.events.received:
        assert B_NUMBER not in message, message

    recording = phone_b.finish_recording()
    assert recording is not None
    report = analyse(recording, frequency=TONE_HZ)
    # A plays from its media start; allow for jitter-buffer warm-up and the tail.
    assert report.tone_s >= TALK_S / 2, f"1 kHz tone not heard by B: {report}"
    assert report.mean_fraction >= 0.9, f"1 kHz tone not dominant: {report}"

    (attempted,) = wait_for_log(server, "call_attempted")
    assert attempted["middle_number"] == X_NUMBER and attempted["rejection"] is None
    (ended,) = wait_for_log(server, "call_ended")
    assert ended["call_id"] == attempted["call_id"], ended
    assert (ended["status"], ended["end_reason"], ended["released_by"]) == (
        200,
        "normal",
        "callee",
    ), ended
    assert wait_for_log(server, "call_answered")


def test_unknown_middle_number_gets_404(
    lab: PhoneLab, serve: Callable[[tuple[str, int]], Server]
) -> None:
    phone_a = lab.phone("A", A_NUMBER)
    # Nobody listens at the trunk: the call must never get that far.
    server = serve(("127.0.0.1", free_sip_port()))
    call = phone_a.call(f"sip:{UNKNOWN_X}@127.0.0.1:{server.sip_port}")
    lab.poll(lambda: call.disconnected, timeout=8, what="A's call to end")
    assert call.events.last_status == 404, call.events
    assert not call.confirmed
    (attempted,) = wait_for_log(server, "call_attempted")
    assert attempted["rejection"] == "unknown_number", attempted
    (ended,) = wait_for_log(server, "call_ended")
    assert (ended["status"], ended["end_reason"], ended["released_by"]) == (
        404,
        "rejected",
        "server",
    ), ended
