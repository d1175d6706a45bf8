"""SIPp load kit: bindings, an injection file, the server, SIPp UAS and UAC, SIPp's summary.

One command from a fresh clone (after scripts/test or scripts/bootstrap)::

    .venv/bin/python sipp_scenarios/load.py --rate 200 --calls 6000 --hold 1

It provisions N AXB bindings (A_i <-> B_i through middle number X_i), writes the
SIPp injection file of (A_i, X_i) pairs, starts `b2bua serve` on free loopback
ports with the abuse policy off (one SIPp caller at hundreds of calls a second is
load, not abuse), starts the SIPp UAS (`load_uas.xml`, B behind the outbound trunk,
checking caller ID and privacy on every INVITE) and runs the SIPp UAC
(`load_uac.xml`) at the given rate. It prints SIPp's own figures: calls attempted,
successful, failed (503 overload answers apart), achieved rate, response-time
percentiles (from `-trace_rtt`), retransmissions, plus the server's CPU seconds
(`/proc/<pid>/stat`, the server process alone) and its state gauges from `/metrics`.
`sipp_scenarios/LOAD.md` explains every SIPp option used.

The functions here are also the harness of `benchmarks/sip_load.py`,
`benchmarks/soak.py` and `tests/load/`; they import this file by path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent
ROOT = SCENARIOS.parent
UAC_SCENARIO = SCENARIOS / "load_uac.xml"
UAS_SCENARIO = SCENARIOS / "load_uas.xml"
OPERATOR_KEY = "load-operator-key"
STARTUP_TIMEOUT_S = 30.0
STATE_GAUGES = ("b2bua_active_calls", "b2bua_dialogs_active", "b2bua_transactions_active")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- numbers and bindings -----------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """One binding's numbers: caller A, middle number X, callee B (national form).

    The ranges are what `load_uas.xml` checks: A is 1380 + 7 digits, B is 139 + 8
    digits, X is 700 + 12 digits; the index i is in all three, so a log line
    can be traced back to its row of the injection file.
    """

    a: str
    x: str
    b: str


def parties(count: int) -> list[Party]:
    """`count` distinct (A, X, B) triples."""
    if not 1 <= count <= 9_999_999:
        raise ValueError("between 1 and 9,999,999 bindings")
    return [Party(f"1380{i:07d}", f"700{i:012d}", f"139{i:08d}") for i in range(1, count + 1)]


async def _provision_store(store_url: str, triples: Sequence[Party]) -> None:
    # Imported here so that `--help` works without the package on sys.path.
    from b2bua.bindings.model import BindingSpec
    from b2bua.bindings.service import BindingService
    from b2bua.store import open_store

    store = await open_store(store_url)
    try:
        service = BindingService(store)
        await service.start(background=False)
        tenant, _ = await service.create_tenant("load-test")
        await service.import_numbers(tenant.id, [p.x for p in triples])
        for party in triples:
            spec = BindingSpec(
                mode="AXB", a=party.a, b=party.b, x=party.x, ttl_s=86_400,
                label="Load", order_id=f"load-{party.x[-7:]}",
            )  # fmt: skip
            await service.create_binding(tenant.id, spec, actor="load")
    finally:
        await store.close()


def provision_store(store_url: str, triples: Sequence[Party]) -> None:
    """Create a tenant, its pool and one AXB binding per triple, straight in the store.

    Used before the server starts: the server loads its binding index at start.
    """
    asyncio.run(_provision_store(store_url, triples))


def _api(base: str, method: str, path: str, body: object, key: str) -> dict[str, object]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def provision_api(base: str, key: str, triples: Sequence[Party]) -> None:
    """The same bindings through the HTTP API (POST /v1/tenants, /v1/numbers, /v1/bindings).

    Raises `urllib.error.HTTPError` (404) while the API routes are not wired.
    """
    tenant = _api(base, "POST", "/v1/tenants", {"name": "load-test"}, key)
    tenant_id = tenant["id"]
    numbers = [p.x for p in triples]
    for start in range(0, len(numbers), 1000):
        body = {"tenant_id": tenant_id, "numbers": numbers[start : start + 1000]}
        _api(base, "POST", "/v1/numbers", body, key)
    for party in triples:
        body = {
            "mode": "AXB", "a": party.a, "b": party.b, "x": party.x, "ttl_s": 86_400,
            "order_id": f"load-{party.x[-7:]}", "label": "Load", "tenant_id": tenant_id,
        }  # fmt: skip
        _api(base, "POST", "/v1/bindings", body, key)


def write_injection(path: Path, triples: Sequence[Party]) -> Path:
    """The SIPp injection file: `SEQUENTIAL`, then `A;X;` per line (fields 0 and 1)."""
    lines = ["SEQUENTIAL"] + [f"{p.a};{p.x};" for p in triples]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- processes ----------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_DGRAM, also_tcp: bool = False) -> int:
    """A loopback port free for UDP (and TCP when `also_tcp`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if not also_tcp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass(frozen=True)
class ProcessUsage:
    """CPU seconds (user + system) and resident memory of one process, from /proc."""

    cpu_s: float
    rss_bytes: int
    # The kernel's part of cpu_s (on loopback, sendto runs the receiver's stack too).
    system_s: float = 0.0

    @staticmethod
    def of(pid: int) -> ProcessUsage:
        """Read /proc/<pid>/stat (utime, stime) and /proc/<pid>/statm (resident pages)."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
        return ProcessUsage(user + system, rss, system)

    @staticmethod
    def of_tree(pid: int) -> ProcessUsage:
        """`of(pid)` added up over the process and its children (the SIP workers)."""
        total = ProcessUsage.of(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            try:
                usage = ProcessUsage.of(int(child))
            except FileNotFoundError:
                continue  # exited between the two reads
            total = ProcessUsage(
                total.cpu_s + usage.cpu_s,
                total.rss_bytes + usage.rss_bytes,
                total.system_s + usage.system_s,
            )
        return total


def b2bua_command() -> list[str]:
    """The console script next to this interpreter, or the module."""
    script = Path(sys.executable).parent / "b2bua"
    return [str(script)] if script.exists() else [sys.executable, "-m", "b2bua.cli"]


@dataclass
class LoadServer:
    """A `b2bua serve` process for a load run, on free loopback ports."""

    process: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    directory: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> ProcessUsage:
        """The server's CPU seconds and RSS so far, every SIP worker process included."""
        return ProcessUsage.of_tree(self.process.pid)

    def metrics_text(self, timeout: float = 5.0) -> str | None:
        """The Prometheus text from /metrics, or None when the endpoint is missing."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return str(response.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def gauges(self, names: Sequence[str] = STATE_GAUGES) -> dict[str, float] | None:
        """The named metrics (summed over labels), or None without /metrics."""
        text = self.metrics_text()
        return None if text is None else parse_metrics(text, names)

    def wait_idle(self, timeout: float) -> dict[str, float] | None:
        """Poll until calls, dialogs and transactions are all 0; return the last values."""
        deadline = time.monotonic() + timeout
        values = self.gauges()
        while values is not None and any(values.get(n, 0.0) for n in STATE_GAUGES):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            values = self.gauges()
        return values

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait for the drain, return the exit code (SIGKILL after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return int(self.process.returncode)


def parse_metrics(text: str, names: Sequence[str]) -> dict[str, float]:
    """Sum each named sample over its label sets (Prometheus text format)."""
    wanted = set(names)
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            head, _, rest = line.rpartition("}")
            name = head.partition("{")[0]
        else:
            name, _, rest = line.partition(" ")
        if name in wanted:
            values[name] = values.get(name, 0.0) + float(rest.split()[0])
    return values


def refusals_by_reason(text: str | None) -> dict[str, float]:
    """The server's 503s by the limit that refused them (b2bua_overload_rejections_total)."""
    pattern = r'^b2bua_overload_rejections_total\{reason="(\w+)"\} (\S+)$'
    return {reason: float(value) for reason, value in re.findall(pattern, text or "", re.M)}


def histogram_buckets(text: str, name: str, where: str = "") -> list[tuple[float, float]]:
    """`(upper bound, cumulative count)` of histogram `name`, sorted by bound.

    `where` (such as `generation="2"`) keeps only the series whose labels hold it.
    """
    buckets: list[tuple[float, float]] = []
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, _, value = line[len(prefix) :].rpartition("}")
            if where not in labels:
                continue
            bound = labels.partition('le="')[2].partition('"')[0]
            buckets.append((float(bound), float(value.split()[0])))
    return sorted(buckets)


def histogram_quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float | None:
    """The q-quantile of the samples taken between two scrapes, interpolated in the
    bucket it falls in (as Prometheus' histogram_quantile does); None without samples."""
    old = dict(before)
    counts = [(bound, count - old.get(bound, 0.0)) for bound, count in after]
    if not counts or counts[-1][1] <= 0:
        return None
    rank = q * counts[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in counts:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


SERVER_CONFIG = """
[sip]
listen = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]
host = "127.0.0.1"
workers = {workers}
{sip}

[http]
listen = "127.0.0.1:{http_port}"

[store]
url = "{store_url}"

[policy]
# One SIPp caller at hundreds of calls a second is load, not abuse.
enabled = false

[limits]
max_calls = {max_calls}
{limits}

[[trunks]]
name = "load-uas"
address = "udp:127.0.0.1:{uas_port}"
inbound_from = ["127.0.0.1/32"]
{extra}
"""


def write_server_config(
    directory: Path,
    *,
    uas_port: int,
    max_calls: int = 20_000,
    limits: str = "",
    extra: str = "",
    workers: int = 1,
    store_url: str | None = None,
    sip: str = "",
) -> tuple[Path, int, int]:
    """The server's TOML for a load run; returns (path, SIP port, HTTP port).

    `limits` and `sip` add lines to `[limits]` and `[sip]`; `extra` appends whole
    tables; the store is SQLite in `directory` unless `store_url` names another.
    """
    sip_port, http_port = free_port(also_tcp=True), free_port(socket.SOCK_STREAM)
    text = SERVER_CONFIG.format(
        sip_port=sip_port,
        http_port=http_port,
        store_url=store_url or f"sqlite:///{directory / 'b2bua.db'}",
        max_calls=max_calls,
        limits=limits,
        uas_port=uas_port,
        extra=extra,
        workers=workers,
        sip=sip,
    )
    path = directory / "b2bua.toml"
    path.write_text(text)
    return path, sip_port, http_port


def start_server(directory: Path, config_path: Path, sip_port: int, http_port: int) -> LoadServer:
    """Start `b2bua serve -c config_path` and wait until it logs `started`."""
    log_path = directory / "server.log"
    with open(log_path, "wb") as log_file:  # a file, not a pipe: the server never blocks on it
        process = subprocess.Popen(
            [*b2bua_command(), "serve", "-c", str(config_path)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory,
            env={**os.environ, "B2BUA_OPERATOR_KEY": OPERATOR_KEY},
        )  # fmt: skip
    server = LoadServer(process, sip_port, http_port, directory, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        # HTTP is the last listener bound; `started` is not logged below level info.
        if b'"started"' in log_path.read_bytes() or _accepts(http_port):
            return server
        if process.poll() is not None:
            raise RuntimeError(f"b2bua exited with {process.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"b2bua did not start in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- SIPp ---------------------------------------------------------------------------


def sipp_path() -> str:
    """The SIPp executable (Debian package sip-tester)."""
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed (Debian: apt-get install sip-tester)")
    return path


@dataclass
class SippSummary:
    """SIPp's own figures for one run (cumulative counters of its -trace_stat file)."""

    role: str
    returncode: int | None
    attempted: int
    successful: int
    failed: int
    rejected_503: int
    retransmissions: int
    elapsed_s: float
    call_rate: float
    response_ms: dict[str, float] = field(default_factory=dict)  # p50/p90/p99/max, rtd 1
    teardown_ms: dict[str, float] = field(default_factory=dict)  # rtd 2 (BYE -> 200)
    stats: dict[str, str] = field(default_factory=dict)
    errors: str = ""

    @property
    def real_failures(self) -> int:
        """Failed calls other than the 503 overload answers."""
        return self.failed - self.rejected_503

    def line(self) -> str:
        """A one-line summary."""
        rt = self.response_ms
        return (
            f"{self.role}: attempted {self.attempted}, successful {self.successful}, "
            f"failed {self.failed} (503: {self.rejected_503}), rate {self.call_rate:.1f} cps, "
            f"retransmissions {self.retransmissions}, INVITE->200 ms p50 {rt.get('p50', 0):.0f} "
            f"p90 {rt.get('p90', 0):.0f} p99 {rt.get('p99', 0):.0f} max {rt.get('max', 0):.0f}"
        )


def _elapsed(value: str) -> float:
    hours, minutes, seconds = (value or "0:0:0").split(":")[:3]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    samples.sort()

    def at(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": samples[-1]}


def read_rtt(directory: Path, prefix: str, pid: int) -> tuple[dict[str, float], dict[str, float]]:
    """Percentiles of response times 1 and 2 from SIPp's `<scenario>_<pid>_rtt.csv`."""
    by_rtd: dict[str, list[float]] = {"1": [], "2": []}
    for path in directory.glob(f"{prefix}_{pid}_rtt.csv"):
        with open(path, newline="") as file:
            for row in csv.reader(file, delimiter=";"):
                if len(row) >= 3 and row[2] in by_rtd:
                    with contextlib.suppress(ValueError):
                        by_rtd[row[2]].append(float(row[1]))
    return _percentiles(by_rtd["1"]), _percentiles(by_rtd["2"])


def read_503s(counts_file: Path) -> int:
    """503 responses received, from the last row of a SIPp -trace_counts file."""
    try:
        with open(counts_file, newline="") as file:
            rows = list(csv.DictReader(file, delimiter=";"))
    except FileNotFoundError:
        return 0
    if not rows:
        return 0
    return sum(int(v or 0) for k, v in rows[-1].items() if k and k.endswith("_503_Recv"))


def read_stats(stat_file: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat file."""
    try:
        with open(stat_file, newline="") as file:
            rows = list(csv.DictReader(file, delimiter=";"))
    except FileNotFoundError:
        return {}
    return rows[-1] if rows else {}


class SippProcess:
    """One SIPp process writing its screen, statistics and errors into `directory`."""

    def __init__(self, role: str, command: list[str], directory: Path) -> None:
        self.role = role
        self.directory = directory
        self.command = command
        with open(directory / f"{role}.out", "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=directory,
            )  # fmt: skip

    def usage(self) -> ProcessUsage | None:
        """SIPp's own CPU and RSS (to tell whether SIPp was the bottleneck)."""
        try:
            return ProcessUsage.of(self.process.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None

    def wait(self, timeout: float) -> SippSummary:
        """Wait for the exit (SIGKILL after `timeout`) and summarise."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.summary()

    def stop(self, grace: float = 5.0) -> SippSummary:
        """SIGUSR1 (SIPp: stop gracefully and dump its statistics), then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
        return self.wait(grace)

    def kill(self) -> None:
        """SIGKILL if still running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def summary(self) -> SippSummary:
        """Counters from the stat file, percentiles from the rtt file."""
        stats = read_stats(self.directory / f"{self.role}.stat.csv")

        def number(name: str) -> int:
            return int(float(stats.get(name, 0) or 0))

        scenario = UAC_SCENARIO if self.role.startswith("uac") else UAS_SCENARIO
        response, teardown = read_rtt(self.directory, scenario.stem, self.process.pid)
        # SIPp ends a call stopped by `stop_call` as successful: the 503s ACKed
        # on the overload branch are counted from -trace_counts and moved over.
        rejected = read_503s(self.directory / f"{scenario.stem}_{self.process.pid}_counts.csv")
        errors_path = self.directory / f"{self.role}.errors.log"
        attempted = number("OutgoingCall(C)") or number("IncomingCall(C)")
        elapsed = _elapsed(stats.get("ElapsedTime(C)", ""))
        return SippSummary(
            role=self.role,
            returncode=self.process.returncode,
            attempted=attempted,
            successful=number("SuccessfulCall(C)") - rejected,
            failed=number("FailedCall(C)") + rejected,
            rejected_503=rejected,
            retransmissions=number("Retransmissions(C)"),
            elapsed_s=elapsed,
            call_rate=float(stats.get("CallRate(C)", 0) or 0),
            response_ms=response,
            teardown_ms=teardown,
            stats=stats,
            errors=errors_path.read_text(errors="replace")[-4000:] if errors_path.exists() else "",
        )


def _common(role: str, scenario: Path, port: int) -> list[str]:
    return [
        sipp_path(),
        "-sf", str(scenario),
        "-i", "127.0.0.1",
        "-p", str(port),
        "-t", "u1",
        "-buff_size", str(4 * 1024 * 1024),
        "-nostdin",
        "-trace_stat", "-stf", f"{role}.stat.csv", "-fd", "1",
        "-trace_err", "-error_file", f"{role}.errors.log",
        "-trace_screen", "-screen_file", f"{role}.screen",
    ]  # fmt: skip


def start_uas(directory: Path, port: int, *, role: str = "uas") -> SippProcess:
    """Start the UAS (B, behind the outbound trunk) on `port` until stopped."""
    command = _common(role, UAS_SCENARIO, port)
    uas = SippProcess(role, command, directory)
    _wait_bound(port, uas)
    return uas


def start_uac(
    directory: Path,
    target: tuple[str, int],
    injection: Path,
    *,
    rate: float,
    calls: int,
    hold_ms: int,
    limit: int,
    timeout_s: float,
    role: str = "uac",
    source_ip: str = "127.0.0.1",
) -> SippProcess:
    """Start the UAC (A) sending `calls` calls at `rate` per second to `target`."""
    command = _common(role, UAC_SCENARIO, free_port())
    command[command.index("-i") + 1] = source_ip
    command += [
        "-inf", str(injection),
        "-r", f"{rate:g}", "-rp", "1000",
        "-m", str(calls),
        "-l", str(limit),
        "-d", str(hold_ms),
        "-recv_timeout", "32000",
        "-timeout", f"{timeout_s:g}s", "-timeout_error",
        "-trace_rtt", "-rtt_freq", "1",
        "-trace_counts",
        f"{target[0]}:{target[1]}",
    ]  # fmt: skip
    return SippProcess(role, command, directory)


def _wait_bound(port: int, sipp: SippProcess, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sipp.process.poll() is not None:
            out = (sipp.directory / f"{sipp.role}.out").read_text(errors="replace")
            raise RuntimeError(f"SIPp {sipp.role} exited:\n{out[-2000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.02)
    raise RuntimeError(f"SIPp {sipp.role} did not bind port {port}")


# --- one whole run ------------------------------------------------------------------


@dataclass
class Lab:
    """A provisioned server with its UAS: what every load run starts from."""

    directory: Path
    server: LoadServer
    uas: SippProcess
    uas_port: int
    injection: Path
    triples: list[Party]


@contextlib.contextmanager
def lab(
    directory: Path,
    *,
    bindings: int = 1000,
    max_calls: int = 20_000,
    limits: str = "",
    extra: str = "",
    via_api: bool = False,
    workers: int = 1,
    store_url: str | None = None,
    sip: str = "",
) -> Iterator[Lab]:
    """Provision, start the server and the UAS; stop both (server drain checked) after."""
    directory.mkdir(parents=True, exist_ok=True)
    triples = parties(bindings)
    uas_port = free_port()
    config, sip_port, http_port = write_server_config(
        directory,
        uas_port=uas_port,
        max_calls=max_calls,
        limits=limits,
        extra=extra,
        workers=workers,
        store_url=store_url,
        sip=sip,
    )
    if not via_api:
        provision_store(store_url or f"sqlite:///{directory / 'b2bua.db'}", triples)
    injection = write_injection(directory / "calls.csv", triples)
    server = start_server(directory, config, sip_port, http_port)
    uas: SippProcess | None = None
    try:
        if via_api:
            provision_api(f"http://127.0.0.1:{http_port}", OPERATOR_KEY, triples)
        uas = start_uas(directory, uas_port)
        yield Lab(directory, server, uas, uas_port, injection, triples)
    finally:
        if uas is not None:
            uas.kill()
        server.stop()


def run_calls(
    current: Lab,
    *,
    rate: float,
    calls: int,
    hold_s: float,
    limit: int | None = None,
    role: str = "uac",
) -> tuple[SippSummary, float, float]:
    """Run the UAC to completion; return its summary, server CPU seconds, wall seconds."""
    hold_ms = int(hold_s * 1000)
    # SIPp's -l: calls open at once. A ceiling well above rate x (hold + set-up).
    limit = limit or max(100, int(rate * (hold_s + 2) * 2))
    expected = calls / rate + hold_s
    timeout = expected * 2 + 40
    before = current.server.usage()
    started = time.monotonic()
    uac = start_uac(
        current.directory, ("127.0.0.1", current.server.sip_port), current.injection,
        rate=rate, calls=calls, hold_ms=hold_ms, limit=limit, timeout_s=timeout, role=role,
    )  # fmt: skip
    summary = uac.wait(timeout + 15)
    elapsed = time.monotonic() - started
    cpu = current.server.usage().cpu_s - before.cpu_s
    return summary, cpu, elapsed


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring and LOAD.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="calls per second (SIPp -r)")
    parser.add_argument("--calls", type=int, default=6000, help="calls in all (SIPp -m)")
    parser.add_argument("--hold", type=float, default=1.0, help="talk time in s (SIPp -d)")
    parser.add_argument("--bindings", type=int, default=1000, help="(A, X) pairs provisioned")
    parser.add_argument("--limit", type=int, default=0, help="SIPp -l (0: from rate x hold)")
    parser.add_argument("--max-calls", type=int, default=20_000, help="server [limits] max_calls")
    parser.add_argument("--via-api", action="store_true", help="provision through the HTTP API")
    parser.add_argument("--workers", type=int, default=1, help="server [sip] workers")
    parser.add_argument("--workdir", type=Path, help="keep every file here (default: temp dir)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="b2bua-load-"))
    with lab(
        workdir,
        bindings=args.bindings,
        max_calls=args.max_calls,
        via_api=args.via_api,
        workers=args.workers,
    ) as current:
        summary, cpu, elapsed = run_calls(
            current, rate=args.rate, calls=args.calls, hold_s=args.hold, limit=args.limit or None
        )
        # The UAS stays up until the state is back to zero: it answers the
        # trunk keepalive, whose transaction would otherwise live 32 s (Timer F).
        state = current.server.wait_idle(timeout=40)
        uas = current.uas.stop()
        rss = current.server.usage().rss_bytes
    print(f"workdir: {workdir}")
    print(summary.line())
    rt2 = summary.teardown_ms
    print(
        f"  BYE->200 ms p50 {rt2.get('p50', 0):.0f} p99 {rt2.get('p99', 0):.0f}; "
        f"SIPp elapsed {summary.elapsed_s:.0f} s, exit code {summary.returncode}"
    )
    print(uas.line().split(", rate")[0].replace("attempted", "received"))
    complete = max(summary.successful, 1)
    print(
        f"server: CPU {cpu:.1f} s in {elapsed:.1f} s ({100 * cpu / elapsed:.0f}% of a core), "
        f"{1000 * cpu / complete:.2f} CPU s per 1,000 complete calls, RSS {rss / 2**20:.0f} MiB"
    )
    print(f"server state after the run: {state if state is not None else 'no /metrics'}")
    if summary.errors.strip():
        print("SIPp UAC errors (tail):\n" + summary.errors[-1500:])
    ok = summary.returncode == 0 and summary.failed == 0 and summary.successful == args.calls
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
