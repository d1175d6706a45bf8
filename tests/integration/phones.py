"""Real SIP phones for end-to-end tests: pjsua2 accounts on loopback UDP transports.

One pjsua2 `Endpoint` per process (a pjsua singleton) holds every phone. It runs
with `threadCnt = 0`: SIP events, and so every Python callback, happen only inside
`PhoneLab.poll`, on the test's own thread. Media keeps pjsua's C threads (its own
ioqueue and the null sound device's clock) which never call into Python.

A Python exception must not escape a pjsua2 callback (it would unwind through C
code), so callbacks record errors in `PhoneLab.errors` and `poll` raises them.

Import this module only after checking that `pjsua2` is importable.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj

POLL_MS = 10
PREFERRED_CODECS = ("PCMA/8000/1", "PCMU/8000/1")


@dataclass
class CallEvents:
    """What a call went through, as seen from Python."""

    states: list[int] = field(default_factory=list)
    # Final status of the INVITE (or of the call when it ended) and its reason.
    last_status: int = 0
    last_reason: str = ""
    remote_uri: str = ""
    remote_contact: str = ""
    # Whole SIP messages this phone received within the call (requests and responses).
    received: list[str] = field(default_factory=list)
    media_active: bool = False


def wav_complete(path: Path) -> bool:
    """Whether the WAV at `path` has its final RIFF size (pjmedia writes 0 until closed)."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[:4] == b"RIFF" and int.from_bytes(head[4:], "little") > 36


class PhoneCall(pj.Call):  # type: ignore[misc]
    """A call that logs its states and hands active audio media to its phone."""

    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.events = CallEvents()
        phone.lab.calls.append(self)

    @property
    def disconnected(self) -> bool:
        return pj.PJSIP_INV_STATE_DISCONNECTED in self.events.states

    @property
    def confirmed(self) -> bool:
        return pj.PJSIP_INV_STATE_CONFIRMED in self.events.states

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        with self.phone.lab.guard("onCallState"):
            info = self.getInfo()
            self.events.states.append(info.state)
            self.events.last_status = int(info.lastStatusCode)
            self.events.last_reason = info.lastReason
            self.events.remote_uri = info.remoteUri
            self.events.remote_contact = info.remoteContact

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        with self.phone.lab.guard("onCallTsxState"):
            event = prm.e
            if event.type == pj.PJSIP_EVENT_TSX_STATE:
                tsx = event.body.tsxState
                if tsx.type == pj.PJSIP_EVENT_RX_MSG:
                    self.events.received.append(tsx.src.rdata.wholeMsg)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        with self.phone.lab.guard("onCallMediaState"):
            info = self.getInfo()
            for index, media in enumerate(info.media):
                if (
                    media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                    and not self.events.media_active
                ):
                    self.events.media_active = True
                    self.phone.on_audio(self, self.getAudioMedia(index))

    def hang_up(self, status: int = 603) -> None:
        """BYE when confirmed; otherwise CANCEL (caller) or reject with `status` (callee)."""
        prm = pj.CallOpParam()
        prm.statusCode = status
        self.hangup(prm)

    def hangup_quietly(self, status: int = 603) -> None:
        """Hang up if the call still exists (teardown helper, never raises)."""
        if self.disconnected:
            return
        try:
            if self.isActive():
                self.hang_up(status)
        except pj.Error:
            pass


class PhoneAccount(pj.Account):  # type: ignore[misc]
    """A registration-less account; incoming calls ring then are answered."""

    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        with self.phone.lab.guard("onIncomingCall"):
            call = PhoneCall(self.phone, prm.callId)
            call.events.received.append(prm.rdata.wholeMsg)
            info = call.getInfo()
            call.events.remote_uri = info.remoteUri
            call.events.remote_contact = info.remoteContact
            self.phone.incoming.append(call)
            for status in self.phone.answer_with:
                answer = pj.CallOpParam()
                answer.statusCode = status
                call.answer(answer)


class Phone:
    """One phone: its own UDP transport on 127.0.0.1 and one account without
    registration. `play` sends a WAV (looped) into every call once its audio is
    active; `record_to` records what the remote side sends to a WAV."""

    def __init__(
        self,
        lab: PhoneLab,
        name: str,
        number: str,
        *,
        answer_with: tuple[int, ...] = (180, 200),
    ) -> None:
        self.lab = lab
        self.name = name
        self.number = number
        self.answer_with = answer_with
        self.incoming: list[PhoneCall] = []
        self.outgoing: list[PhoneCall] = []
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.recording: Path | None = None

        transport = pj.TransportConfig()
        transport.port = 0
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        self.transport_id = lab.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        host, _, port = lab.endpoint.transportGetInfo(self.transport_id).localName.rpartition(":")
        self.address = (host, int(port))

        config = pj.AccountConfig()
        config.idUri = f"sip:{number}@127.0.0.1"
        config.regConfig.registrarUri = ""
        config.regConfig.registerOnAdd = False
        config.sipConfig.transportId = self.transport_id
        rtp = config.mediaConfig.transportConfig
        rtp.boundAddress = "127.0.0.1"
        rtp.publicAddress = "127.0.0.1"
        rtp.port = lab.next_rtp_port()
        rtp.portRange = 40
        self.account = PhoneAccount(self)
        self.account.create(config)

    def play(self, wav: Path) -> None:
        """Loop `wav` into every call of this phone once its audio is up."""
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(wav), 0)  # 0: loop at the end of the file
        self.player = player

    def record_to(self, wav: Path) -> None:
        """Record the audio received in this phone's calls into `wav`."""
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(wav))
        self.recorder = recorder
        self.recording = wav

    def finish_recording(self, timeout: float = 3.0) -> Path | None:
        """Close the recorder and wait until its WAV header is complete; return the file.

        The C++ destructor removes the recorder from the conference bridge, which
        since pjsua 2.14 happens asynchronously on the media clock thread: the
        file's RIFF/data sizes are written a moment after `del`.
        """
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            del recorder
        if self.recording is None or timeout <= 0:
            return self.recording
        deadline = time.monotonic() + timeout
        while not wav_complete(self.recording):
            if time.monotonic() >= deadline:
                raise AssertionError(f"recorder did not finish {self.recording} in {timeout}s")
            self.lab.endpoint.libHandleEvents(POLL_MS)
        return self.recording

    def on_audio(self, call: PhoneCall, audio: pj.AudioMedia) -> None:
        if self.player is not None:
            self.player.startTransmit(audio)
        if self.recorder is not None:
            audio.startTransmit(self.recorder)

    def call(self, uri: str) -> PhoneCall:
        """Start a call to `uri` (a full SIP URI)."""
        call = PhoneCall(self)
        self.outgoing.append(call)
        call.makeCall(uri, pj.CallOpParam(True))
        return call

    def calls(self) -> list[PhoneCall]:
        return [*self.outgoing, *self.incoming]

    def close(self) -> None:
        """Hang up this phone's calls that are still up (teardown)."""
        for call in self.calls():
            call.hangup_quietly()


class PhoneLab:
    """The pjsua2 endpoint, its phones, and bounded event polling."""

    def __init__(self, log_path: Path) -> None:
        self.errors: list[str] = []
        self.phones: list[Phone] = []
        self.calls: list[PhoneCall] = []
        self._rtp_base = random.randrange(20000, 40000, 2)
        self.endpoint = pj.Endpoint()
        self.endpoint.libCreate()
        try:
            config = pj.EpConfig()
            config.uaConfig.threadCnt = 0
            config.uaConfig.mainThreadOnly = False
            config.uaConfig.maxCalls = 8
            config.uaConfig.userAgent = "b2bua-test-phone"
            config.logConfig.level = 5
            config.logConfig.consoleLevel = 0
            config.logConfig.msgLogging = True
            config.logConfig.filename = str(log_path)
            config.medConfig.noVad = True  # keep a steady RTP stream
            self.endpoint.libInit(config)
            self.endpoint.audDevManager().setNullDev()
            # G.711 first, as on a carrier trunk (pjsua would pick speex/16000).
            for priority, codec in enumerate(PREFERRED_CODECS):
                self.endpoint.codecSetPriority(codec, 255 - priority)
            self.endpoint.libStart()
        except BaseException:
            self.endpoint.libDestroy()
            del self.endpoint  # the singleton must go before another Endpoint()
            raise
        self.log_path = log_path

    def next_rtp_port(self) -> int:
        port = self._rtp_base
        self._rtp_base += 100
        return port

    def phone(self, name: str, number: str, **options: tuple[int, ...]) -> Phone:
        phone = Phone(self, name, number, **options)
        self.phones.append(phone)
        return phone

    def guard(self, where: str) -> _Guard:
        return _Guard(self, where)

    def poll(self, until: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        """Handle SIP events until `until()` holds; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            self.endpoint.libHandleEvents(POLL_MS)
            self.raise_errors()
            if until():
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def run_for(self, seconds: float) -> None:
        """Handle SIP events for `seconds` (media keeps flowing meanwhile)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.endpoint.libHandleEvents(POLL_MS)
            self.raise_errors()

    def raise_errors(self) -> None:
        if self.errors:
            raise AssertionError("error in a pjsua2 callback:\n" + "\n".join(self.errors))

    def close(self) -> None:
        """Hang up everything, let the BYEs go out, then destroy the library.

        pjsua2 objects (calls, media, accounts) are released before `libDestroy`;
        releasing them afterwards touches freed pjsua state.
        """
        try:
            for phone in self.phones:
                phone.close()
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not all(
                call.disconnected for phone in self.phones for call in phone.calls()
            ):
                self.endpoint.libHandleEvents(POLL_MS)
            for phone in self.phones:
                phone.finish_recording(timeout=0)
                phone.player = None
                phone.outgoing.clear()
                phone.incoming.clear()
            for phone in self.phones:
                phone.account.shutdown()
        finally:
            # A test (or its traceback) may still hold calls; were they deleted
            # after libDestroy, `Call::~Call` would assert inside pjsua and abort
            # the whole test process. Leave their C++ side to the process exit.
            for call in self.calls:
                call.thisown = False
            self.calls.clear()
            self.phones.clear()
            self.endpoint.libDestroy()
            # pjsua2's Endpoint is a singleton: the next PhoneLab can only create
            # its own once this one is deleted, so do not wait for the GC.
            del self.endpoint


class _Guard:
    """Context manager recording (not raising) exceptions inside pjsua2 callbacks."""

    def __init__(self, lab: PhoneLab, where: str) -> None:
        self.lab = lab
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        if value is not None:
            self.lab.errors.append(f"{self.where}: {traceback.format_exc()}")
        return True
