"""Calls through the real server: bindings made through the store, SIPp on both sides.

The numbers below are the numbering plan every scenario in `sipp_scenarios/`
checks literally (SIPp does not expand keywords inside `<ereg regexp=...>`, so
the privacy and caller-ID checks name the numbers themselves). Each test gets
its own server and SQLite file, so every test can use the same numbers.

`CallLab` starts one server whose outbound trunk points at a SIPp UAS port,
with the bindings a test asks for created in the store before the server
loads its index. `Sipp` runs SIPp: the UAS in the background, the UAC in the
foreground, every process bounded in time and killed in a `finally`.
"""

from __future__ import annotations

import asyncio
import csv
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tooling import require_tool

from b2bua.bindings.model import Binding, BindingSpec
from b2bua.bindings.service import BindingService
from b2bua.store import open_store
from integration.server import Server, free_sip_port, start_process

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp_scenarios"

# The numbering plan of sipp_scenarios/ (see sipp_scenarios/README.md).
A = "13800000001"
B = "13900000002"
N = "13700000003"  # a stranger: not a participant of any binding
G1 = "13600000011"  # GXB group members, hunted in this order
G2 = "13600000012"
X = "700000000000001"
Y = "700000000000002"
UNKNOWN_X = "700000000000099"  # in the pool, never bound
LABEL = "Shop"
POOL = (X, Y, UNKNOWN_X)

# T1 = 50 ms: the server's non-INVITE server transactions linger 64*T1 = 3.2 s
# after a call (Timer J), which bounds how long each no-leak check waits.
FAST_TIMERS = """
t1 = 0.05
t2 = 0.2
t4 = 0.25
"""

# SIPp exits with 0 when every call succeeded, 1 when at least one failed.
SIPP_UAC_TIMEOUT_S = 20
SIPP_UAS_WAIT_S = 10


def spec(mode: str, **fields: object) -> BindingSpec:
    """A binding spec with the plan's defaults: one hour, label, order id."""
    values: dict[str, object] = {"ttl_s": 3600, "label": LABEL, "order_id": "order-1"}
    values.update(fields)
    return BindingSpec(mode=mode, **values)  # type: ignore[arg-type]


async def _provision(db_path: Path, specs: Sequence[BindingSpec]) -> list[Binding]:
    store = await open_store(f"sqlite:///{db_path}")
    try:
        service = BindingService(store)
        await service.start(background=False)
        tenant, _ = await service.create_tenant("sipp-tests")
        await service.import_numbers(tenant.id, POOL)
        return [await service.create_binding(tenant.id, s, actor="tests") for s in specs]
    finally:
        await store.close()


def provision(db_path: Path, specs: Sequence[BindingSpec]) -> list[Binding]:
    """Create a tenant with the plan's pool and the given bindings in a SQLite store."""
    return asyncio.run(_provision(db_path, specs))


def trunk_to(port: int, transport: str = "udp") -> str:
    """A [[trunks]] table sending outbound calls to a SIPp UAS on loopback `port`."""
    return f"""
[[trunks]]
name = "sipp-uas"
address = "{transport}:127.0.0.1:{port}"
inbound_from = ["127.0.0.1/32"]
"""


@dataclass
class CallLab:
    """One server routing to one SIPp UAS port, with bindings from the store."""

    server: Server
    uas_port: int
    bindings: list[Binding]
    created_at: float
    uas_transport: str = "udp"


@contextmanager
def call_lab(
    tmp_path: Path,
    specs: Sequence[BindingSpec],
    *,
    sections: str = "",
    timers: str = FAST_TIMERS,
    uas_transport: str = "udp",
) -> Iterator[CallLab]:
    """Provision `specs`, start a server whose trunk is a fresh UAS port; stop it after.

    `uas_transport` ("udp" or "tcp") is how the server reaches the UAS. The
    server must exit 0 on SIGTERM (a crash or a hung drain fails the test).
    """
    directory = tmp_path / "node"
    directory.mkdir()
    bindings = provision(directory / "b2bua.db", specs)
    created_at = time.monotonic()
    uas_port = free_sip_port()
    server = start_process(
        directory, trunks=trunk_to(uas_port, uas_transport), sections=sections, timers=timers
    )
    try:
        yield CallLab(server, uas_port, bindings, created_at, uas_transport)
    finally:
        already = server.stopped
        code = server.stop()
        if not already:
            assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()[-4000:]}"


@dataclass
class SippResult:
    """What one SIPp process did."""

    role: str
    returncode: int | None
    successful: int
    failed: int
    output: str
    errors: str
    stats: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Everything useful when an assertion about this run fails."""
        return (
            f"--- SIPp {self.role}: exit {self.returncode}, {self.successful} successful, "
            f"{self.failed} failed\n--- errors:\n{self.errors[-6000:]}\n"
            f"--- screen:\n{self.output[-3000:]}"
        )


def _stats(stat_file: Path) -> dict[str, str]:
    """The last row of a SIPp `-trace_stat` file (cumulative counters)."""
    try:
        with open(stat_file, newline="") as file:
            rows = list(csv.DictReader(file, delimiter=";"))
    except FileNotFoundError:
        return {}
    return rows[-1] if rows else {}


def _wait_bound(
    port: int, process: subprocess.Popen[bytes], transport: str = "udp", timeout: float = 5.0
) -> None:
    """Wait until a process holds `port` (binding it ourselves fails)."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return  # it died; the caller reports its output
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.02)
    raise AssertionError(f"SIPp did not bind UDP port {port} in {timeout}s")


class SippProcess:
    """A SIPp process running in the background, its output going to files."""

    def __init__(self, role: str, command: list[str], directory: Path) -> None:
        self.role = role
        self.directory = directory
        self.screen = directory / f"{role}.screen"
        with open(self.screen, "wb") as screen:
            self.process = subprocess.Popen(
                command, stdout=screen, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=directory,
            )  # fmt: skip

    def wait(self, timeout: float) -> SippResult:
        """Wait for the exit (killing it after `timeout`) and collect its counters."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.result()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def result(self) -> SippResult:
        stats = _stats(self.directory / f"{self.role}.stat.csv")
        errors = self.directory / f"{self.role}.errors.log"
        return SippResult(
            role=self.role,
            returncode=self.process.returncode,
            successful=int(stats.get("SuccessfulCall(C)", 0) or 0),
            failed=int(stats.get("FailedCall(C)", 0) or 0),
            output=self.screen.read_text(errors="replace"),
            errors=errors.read_text(errors="replace") if errors.exists() else "",
            stats=stats,
        )


class Sipp:
    """Builds and runs SIPp command lines against one CallLab."""

    def __init__(self, sipp: str, lab: CallLab, directory: Path) -> None:
        self.sipp = sipp
        self.lab = lab
        self.directory = directory
        self.running: list[SippProcess] = []

    def _command(
        self,
        role: str,
        scenario: str,
        port: int,
        *,
        calls: int,
        timeout_s: float,
        keys: dict[str, str],
        extra: Sequence[str],
        transport: str = "udp",
    ) -> list[str]:
        command = [
            self.sipp,
            "-sf", str(SCENARIOS / scenario),
            "-i", "127.0.0.1",
            "-p", str(port),
            "-t", "t1" if transport == "tcp" else "u1",
            "-m", str(calls),
            "-timeout", f"{timeout_s:g}s",
            "-timeout_error",
            "-recv_timeout", "10000",
            "-nostdin",
            "-trace_stat", "-stf", f"{role}.stat.csv",
            "-trace_err", "-error_file", f"{role}.errors.log",
        ]  # fmt: skip
        for key, value in keys.items():
            command += ["-key", key, value]
        return command + list(extra)

    def start_uas(
        self,
        scenario: str,
        *,
        calls: int = 1,
        timeout_s: float = 30,
        keys: dict[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> SippProcess:
        """Start the UAS (the callee side) on the trunk port, in the background."""
        port = self.lab.uas_port
        transport = self.lab.uas_transport
        command = self._command(
            "uas", scenario, port, calls=calls, timeout_s=timeout_s, keys=keys or {},
            extra=extra, transport=transport,
        )  # fmt: skip
        uas = SippProcess("uas", command, self.directory)
        self.running.append(uas)
        _wait_bound(port, uas.process, transport)
        return uas

    def run_uac(
        self,
        scenario: str,
        *,
        caller: str,
        dialled: str,
        calls: int = 1,
        timeout_s: float = SIPP_UAC_TIMEOUT_S,
        extra: Sequence[str] = (),
    ) -> SippResult:
        """Run the UAC (the caller side) in the foreground against the server."""
        command = self._command(
            "uac", scenario, free_sip_port(), calls=calls, timeout_s=timeout_s,
            keys={"caller": caller}, extra=["-s", dialled, *extra],
        )  # fmt: skip
        command.append(f"127.0.0.1:{self.lab.server.sip_port}")
        uac = SippProcess("uac", command, self.directory)
        self.running.append(uac)
        # SIPp's own -timeout ends it first; this bound only catches a hung SIPp.
        return uac.wait(timeout_s + 10)

    def kill_all(self) -> None:
        for process in self.running:
            process.kill()


@contextmanager
def sipp_runner(lab: CallLab, directory: Path) -> Iterator[Sipp]:
    """A `Sipp` whose processes are all killed when the block ends."""
    sipp = Sipp(require_tool("sipp"), lab, directory)
    try:
        yield sipp
    finally:
        sipp.kill_all()


def assert_calls(result: SippResult, successful: int) -> None:
    """SIPp exited 0 with exactly `successful` successful calls and none failed."""
    assert result.returncode == 0, result.describe()
    assert result.successful == successful, result.describe()
    assert result.failed == 0, result.describe()


def assert_flow(
    uac: SippResult, uas: SippProcess | None, *, calls: int = 1, uas_calls: int | None = None
) -> None:
    """Both sides of a flow ended with every call successful."""
    assert_calls(uac, calls)
    if uas is not None:
        uas_result = uas.wait(SIPP_UAS_WAIT_S)
        assert_calls(uas_result, calls if uas_calls is None else uas_calls)


def server_log_tail(server: Server) -> str:
    return server.log_path.read_text(errors="replace")[-4000:]
