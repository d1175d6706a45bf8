"""The whole server under SIPp load: capacity, CPU per call, memory per call, loop lag.

Run: .venv/bin/python benchmarks/sip_load.py [--only capacity,overload,cpu,memory] [--budget-min 10]
     [--workers N]

For the server alone (its process and, with `--workers` above 1, its worker
processes added up; CPU from /proc/<pid>/stat utime + stime, RSS from
/proc/<pid>/statm; SIPp's own CPU is read the same way only to name the
bottleneck), it prints:

1. capacity: the highest rate the server sustains for 30 s with under 0.1% failed
   calls. The rate steps up (short 10 s probes, +100 cps, then halving the step
   after the first failure) within a time budget, and the best probe is then
   confirmed by a full 30 s run (stepping down if the confirmation fails). Each
   step names the bottleneck: the server (its CPU near a whole core), SIPp (its
   CPU near a core, or it could not send at the asked rate), or the machine
   (neither at a core: the two cores are shared);
2. CPU seconds per 1,000 complete calls at a fixed 200 calls per second (three
   30 s runs, median), and the same as a multiple of the sans-IO core's CPU per
   call read just before each run (which compares across days better);
3. overload: twice the confirmed rate for 30 s; the completed rate against the
   sustainable one (target >= 90%), the 503s, other failures, retransmissions,
   then half the rate to show the recovery;
4. resident memory with 5,000 concurrent calls held (long hold) minus the idle
   memory after a warm-up, per call; and the event-loop lag p99 from /metrics
   (`b2bua_event_loop_lag_seconds`, interpolated in its buckets) during the
   200 cps runs and while the 5,000 calls are set up and held.

Targets (DESIGN 7, issue 8): >= 800 cps with < 0.1% failures, <= 1.0 CPU s per
1,000 calls, <= 16 KB per concurrent call, loop lag p99 < 20 ms. The machine is
shared: the script prints `uptime` before and after, and the sans-IO core's CPU per
call on this machine (`machine speed`); compare figures within one run, and across
runs only together with that speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAG = "b2bua_event_loop_lag_seconds"
# [sip] workers of the server under test (--workers); its CPU and RSS are the sum of all.
WORKERS = 1


def load_script(name: str, path: Path) -> ModuleType:
    """A script imported by path (sipp_scenarios/ and benchmarks/ are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


kit = load_script("b2bua_load_kit", ROOT / "sipp_scenarios" / "load.py")


engine_bench = load_script("b2bua_engine_bench", ROOT / "benchmarks" / "engine_bench.py")


def machine_speed() -> str:
    """The machine's speed (`engine_bench.machine_speed_us`) as a line of the report."""
    return f"sans-IO core {engine_bench.machine_speed_us():.0f} us CPU per call (engine_bench.py)"


def uptime() -> str:
    """The load averages, for the record of how busy the machine was."""
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Step:
    """One fixed-rate run and what it cost."""

    rate: float
    calls: int
    summary: Any  # the kit's SippSummary
    server_cpu_s: float
    server_system_s: float
    wall_s: float
    uac_cpu_share: float
    uas_cpu_share: float
    # The server's 503s during the step by the limit that refused them (its
    # b2bua_overload_rejections_total): a configured limit is not a CPU ceiling.
    refusals: dict[str, float] = field(default_factory=dict)

    @property
    def failed_share(self) -> float:
        """Failed calls (503s included) and calls never finished, over calls asked."""
        s = self.summary
        unfinished = max(0, self.calls - s.successful - s.failed)
        return (s.failed + unfinished) / max(1, self.calls)

    @property
    def server_share(self) -> float:
        """The server's CPU over the run, in cores."""
        return self.server_cpu_s / self.wall_s

    @property
    def system_share(self) -> float:
        """The kernel's part of the server's CPU (system time over user + system)."""
        return self.server_system_s / max(1e-9, self.server_cpu_s)

    @property
    def completed_rate(self) -> float:
        """Successful calls per second of calling (the hold tail left out)."""
        return float(self.summary.successful) / max(1e-9, self.wall_s - HOLD_S)

    def ok(self) -> bool:
        """Under 0.1% failed calls."""
        return self.failed_share < 0.001

    def bottleneck(self) -> str:
        """Who limited this step: a server limit, the server, SIPp, or the shared machine."""
        cores = os.cpu_count() or 1
        limits = {k: v for k, v in self.refusals.items() if v and k != "load_shed"}
        if limits:
            named = ", ".join(f"{k} {v:.0f}" for k, v in sorted(limits.items()))
            return f"server limit, not CPU ({named} 503s; see [limits])"
        # Each worker process can use one core, and no more than the machine has.
        if self.server_share >= 0.9 * min(WORKERS, cores):
            return f"server CPU ({100 * self.server_share:.0f}% of a core)"
        sipp = max(self.uac_cpu_share, self.uas_cpu_share)
        shares = (
            f"server {100 * self.server_share:.0f}%, UAC {100 * self.uac_cpu_share:.0f}%, "
            f"UAS {100 * self.uas_cpu_share:.0f}% of a core"
        )
        if sipp >= 0.9:
            return f"SIPp ({shares})"
        if self.refusals.get("load_shed"):
            return f"server load shedding: its receive queue delay ({shares})"
        if self.server_share + self.uac_cpu_share + self.uas_cpu_share >= 0.9 * cores:
            return f"every core busy ({shares})"
        return f"shared machine ({shares})"

    def line(self) -> str:
        """One line: outcome, server CPU, response times, bottleneck."""
        s = self.summary
        rt = s.response_ms
        per_1000 = 1000 * self.server_cpu_s / max(1, s.successful)
        return (
            f"{self.rate:5.0f} cps x {self.calls:6d}: ok {s.successful}, failed {s.failed} "
            f"(503 {s.rejected_503}), {100 * self.failed_share:.3f}% failed, "
            f"{self.completed_rate:.0f} cps completed; server {100 * self.server_share:.0f}% of a "
            f"core, {per_1000:.2f} CPU s/1000 calls ({100 * self.system_share:.0f}% kernel); "
            f"INVITE->200 p50 {rt.get('p50', 0):.0f} "
            f"p99 {rt.get('p99', 0):.0f} ms; retransmissions {s.retransmissions}; "
            f"bottleneck: {self.bottleneck()}"
        )


HOLD_S = 1.0


def run_step(lab: Any, rate: float, seconds: float, hold_s: float = HOLD_S) -> Step:
    """One UAC run at `rate` for `seconds`, with the CPU of the server and of SIPp."""
    calls = int(rate * seconds)
    # Scraped outside the CPU readings: merging the workers' metrics costs the server too.
    refusals_before = kit.refusals_by_reason(lab.server.metrics_text())
    uas_before = lab.uas.usage()
    server_before = lab.server.usage()
    started = time.monotonic()
    uac = kit.start_uac(
        lab.directory, ("127.0.0.1", lab.server.sip_port), lab.injection,
        rate=rate, calls=calls, hold_ms=int(hold_s * 1000),
        limit=max(200, int(rate * (hold_s + 2) * 2)), timeout_s=seconds * 2 + 60,
        role=f"uac-{int(rate)}-{int(started)}",
    )  # fmt: skip
    uac_cpu = 0.0
    while uac.process.poll() is None:
        usage = uac.usage()
        uac_cpu = usage.cpu_s if usage is not None else uac_cpu
        time.sleep(0.2)
    wall = time.monotonic() - started
    summary = uac.summary()
    server_after = lab.server.usage()
    server_cpu = server_after.cpu_s - server_before.cpu_s
    server_system = server_after.system_s - server_before.system_s
    uas_after = lab.uas.usage()
    uas_cpu = (uas_after.cpu_s - uas_before.cpu_s) if uas_after and uas_before else 0.0
    refused = {
        reason: count - refusals_before.get(reason, 0.0)
        for reason, count in kit.refusals_by_reason(lab.server.metrics_text()).items()
    }
    return Step(
        rate, calls, summary, server_cpu, server_system, wall, uac_cpu / wall, uas_cpu / wall,
        refused,
    )  # fmt: skip


def settle(lab: Any, timeout: float = 20.0) -> None:
    """Let the last step's calls end before the next one (transactions may linger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gauges = lab.server.gauges(["b2bua_active_calls"])
        if not gauges or not gauges.get("b2bua_active_calls"):
            return
        time.sleep(0.5)


def capacity(directory: Path, budget_s: float, start: float, step: float) -> Step | None:
    """Step the rate up within `budget_s`, then confirm the best for 30 s."""
    print(f"\n== capacity (30 s with < 0.1% failed calls), {uptime()}")
    deadline = time.monotonic() + budget_s
    with kit.lab(directory / "capacity", bindings=2000, workers=WORKERS) as lab:
        best, rate = 0.0, start
        while time.monotonic() + 30 < deadline and step >= 25:
            result = run_step(lab, rate, 10)
            print("  probe " + result.line(), flush=True)
            settle(lab)
            if result.ok():
                best, rate = rate, rate + step
            else:
                step /= 2
                rate = best + step if best else rate / 2
        confirmed = None
        candidate = best
        while candidate >= start / 2 and time.monotonic() < deadline + 120:
            result = run_step(lab, candidate, 30)
            print("  30 s  " + result.line(), flush=True)
            settle(lab)
            if result.ok():
                confirmed = result
                break
            candidate -= max(25.0, step)
    if confirmed is None:
        print("capacity: no rate confirmed within the budget")
    else:
        print(
            f"capacity: {confirmed.rate:.0f} cps sustained for 30 s, "
            f"{100 * confirmed.failed_share:.3f}% failed; bottleneck: {confirmed.bottleneck()}"
        )
    return confirmed


def overload(directory: Path, sustainable: Step) -> None:
    """Twice the sustainable rate for 30 s, then half of it: shedding and recovery."""
    rate = 2 * sustainable.rate
    print(
        f"\n== overload: {rate:.0f} cps offered for 30 s (2 x {sustainable.rate:.0f}), {uptime()}"
    )
    with kit.lab(directory / "overload", bindings=2000, workers=WORKERS) as lab:
        over = run_step(lab, rate, 30)
        print("  " + over.line(), flush=True)
        time.sleep(3)
        after = run_step(lab, sustainable.rate / 2, 10)
        print("  after: " + after.line(), flush=True)
        settle(lab)
    share = over.completed_rate / max(1e-9, sustainable.completed_rate)
    s = over.summary
    print(
        f"overload: completed {over.completed_rate:.0f} cps = {100 * share:.0f}% of the "
        f"sustainable {sustainable.completed_rate:.0f} cps (target >= 90%); 503 {s.rejected_503}, "
        f"other failures {s.real_failures}, retransmissions {s.retransmissions}, INVITE->200 "
        f"p99 {s.response_ms.get('p99', 0):.0f} ms; afterwards at {after.rate:.0f} cps: "
        f"{after.summary.failed} failed"
    )


def lag_p99(before: str | None, after: str | None) -> str:
    """p99 of the loop-lag samples taken between two scrapes, or why it is unknown."""
    if before is None or after is None:
        return "n/a (no /metrics)"
    buckets_before = kit.histogram_buckets(before, LAG)
    buckets_after = kit.histogram_buckets(after, LAG)
    if not buckets_after:
        return f"n/a (no {LAG} in /metrics)"
    value = kit.histogram_quantile(buckets_before, buckets_after, 0.99)
    samples = buckets_after[-1][1] - (buckets_before[-1][1] if buckets_before else 0.0)
    return "n/a (no samples)" if value is None else f"{1000 * value:.1f} ms ({samples:.0f} samples)"


def gc_pauses(before: str | None, after: str | None) -> str:
    """Collections between two scrapes by generation: how many and the longest bucket.

    Full (generation 2) collections are the ones to watch for memory; the younger
    ones are what usually sets the loop lag's tail: a collection holds the loop.
    """
    if before is None or after is None:
        return "n/a"
    name = "b2bua_gc_pause_seconds"
    parts = []
    for generation, label in (("0", "young"), ("1", "middle"), ("2", "full")):
        where = f'generation="{generation}"'
        old = kit.histogram_buckets(before, name, where)
        new = kit.histogram_buckets(after, name, where)
        if not new:
            return "n/a"
        old_counts = dict(old)
        counts = [(bound, count - old_counts.get(bound, 0.0)) for bound, count in new]
        total = counts[-1][1]
        if total <= 0:
            parts.append(f"0 {label}")
            continue
        longest = next(bound for bound, count in counts if count >= total)
        parts.append(f"{total:.0f} {label} (longest <= {1000 * longest:.1f} ms)")
    return ", ".join(parts)


def cpu_per_call(directory: Path, rate: float, seconds: float, repeats: int) -> None:
    """CPU seconds per 1,000 complete calls at a fixed rate; median of `repeats` runs."""
    print(f"\n== CPU per 1,000 calls at {rate:.0f} cps ({repeats} x {seconds:.0f} s), {uptime()}")
    with kit.lab(directory / "cpu", bindings=2000, workers=WORKERS) as lab:
        run_step(lab, rate, 3)  # warm-up: imports, caches, first allocations
        settle(lab)
        figures, ratios = [], []
        for _ in range(repeats):
            # The machine's speed drifts within the hour: read it next to each run.
            core = engine_bench.machine_speed_us()
            before = lab.server.metrics_text()
            result = run_step(lab, rate, seconds)
            after = lab.server.metrics_text()
            figures.append(1000 * result.server_cpu_s / max(1, result.summary.successful))
            ratios.append(figures[-1] * 1000 / core)
            print(
                f"  {result.line()}; loop lag p99 {lag_p99(before, after)}; "
                f"GC {gc_pauses(before, after)}; sans-IO core just before {core:.0f} us, "
                f"so a call costs the server {ratios[-1]:.2f} x the core",
                flush=True,
            )
            settle(lab)
    print(
        f"cpu: median {statistics.median(figures):.2f} CPU s per 1,000 complete calls at "
        f"{rate:.0f} cps (runs: {', '.join(f'{f:.2f}' for f in figures)}); target <= 1.0"
    )
    print(
        f"cpu: median {statistics.median(ratios):.2f} x the sans-IO core's CPU per call "
        f"(runs: {', '.join(f'{r:.2f}' for r in ratios)}); this ratio compares across days "
        "better than the raw figure"
    )


def memory_per_call(directory: Path, concurrent: int, rate: float) -> None:
    """RSS with `concurrent` calls held, minus idle RSS after a warm-up, per call."""
    print(f"\n== memory with {concurrent} concurrent calls (set up at {rate:.0f} cps), {uptime()}")
    with kit.lab(
        directory / "memory", bindings=2000, max_calls=concurrent * 2, workers=WORKERS
    ) as lab:
        run_step(lab, 100, 3)  # warm-up, so lazily built state is not counted per call
        settle(lab)
        idle = lab.server.usage().rss_bytes
        setup_s = concurrent / rate
        hold_s = setup_s + 30
        before = lab.server.metrics_text()
        uac = kit.start_uac(
            lab.directory, ("127.0.0.1", lab.server.sip_port), lab.injection,
            rate=rate, calls=concurrent, hold_ms=int(hold_s * 1000), limit=concurrent + 100,
            timeout_s=hold_s * 2 + 60, role="uac-memory",
        )  # fmt: skip
        try:
            deadline = time.monotonic() + setup_s + 30
            gauges = lab.server.gauges() or {}
            while time.monotonic() < deadline:
                gauges = lab.server.gauges() or {}
                if gauges.get("b2bua_active_calls", 0) >= concurrent:
                    break
                time.sleep(0.5)
            time.sleep(3)  # set-up transactions end (Timer K / J), CDR batches flush
            held = lab.server.usage().rss_bytes
            gauges = lab.server.gauges() or {}
            after = lab.server.metrics_text()
        finally:
            uac.kill()
    active = int(gauges.get("b2bua_active_calls", 0))
    per_call = (held - idle) / max(1, active)
    print(
        f"memory: idle {idle / 2**20:.1f} MiB, with {active} calls held {held / 2**20:.1f} MiB "
        f"-> {per_call / 1024:.1f} KiB per concurrent call (target <= 16 KB); gauges {gauges}"
    )
    print(f"loop lag p99 while setting up and holding {active} calls: {lag_p99(before, after)}")
    print(f"GC meanwhile: {gc_pauses(before, after)}")


def main() -> int:
    """Run the selected measurements; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="capacity,overload,cpu,memory", help="comma-separated parts"
    )
    parser.add_argument("--budget-min", type=float, default=10.0, help="capacity search budget")
    parser.add_argument("--start", type=float, default=200.0, help="first probe rate (cps)")
    parser.add_argument("--step", type=float, default=100.0, help="first rate step (cps)")
    parser.add_argument("--cpu-rate", type=float, default=200.0)
    parser.add_argument("--cpu-seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=5000)
    parser.add_argument("--setup-rate", type=float, default=250.0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="server [sip] workers")
    args = parser.parse_args()
    global WORKERS
    WORKERS = args.workers
    directory = args.workdir or Path(tempfile.mkdtemp(prefix="b2bua-sip-load-"))
    parts = set(args.only.split(","))
    print(f"workdir {directory}; {os.cpu_count()} CPUs; {uptime()}; server workers {WORKERS}")
    print(f"machine speed: {machine_speed()}")
    sustainable = None
    if "capacity" in parts:
        sustainable = capacity(directory, args.budget_min * 60, args.start, args.step)
    if "overload" in parts and sustainable is not None:
        overload(directory, sustainable)
    if "cpu" in parts:
        cpu_per_call(directory, args.cpu_rate, args.cpu_seconds, args.repeats)
    if "memory" in parts:
        memory_per_call(directory, args.concurrent, args.setup_rate)
    print(f"\ndone; {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
