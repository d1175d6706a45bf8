"""Soak: a long run at half the sustainable rate; no failures, no leaks, flat memory.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 125] [--hold 2] [--workers 1]

SIPp calls A -> X -> B at a fixed rate for `--minutes` (default 10; not in CI).
The server's RSS (/proc/<pid>/statm) and its /metrics gauges (calls, dialogs,
transactions) are sampled every 5 s. It prints the median RSS of the first and of
the last minute of calling, and after the run waits for the state gauges to fall
to zero. It passes (exit 0) with 0 failed calls, 0 leaked calls, dialogs and
transactions, and the last minute's median RSS within 10% (and 20 MiB) of the
second minute's (the first minute is partly the climb to the steady state, since
transactions outlive their call by 32 s; it is printed too).

`--rate` should be half the rate `benchmarks/sip_load.py` confirms on the same
machine with the same `--workers` (one worker: about 250-550 cps on the shared
2-core development machine, hence the default 125). With `--workers` above 1,
RSS is the sum over the server's processes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

SAMPLE_S = 5.0

# The kit loader and the load-average line are the SIP benchmark's (this folder is
# on sys.path when a script in it runs).
from sip_load import kit, uptime  # noqa: E402


def main() -> int:
    """Run the soak; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=125.0, help="calls per second")
    parser.add_argument("--hold", type=float, default=2.0, help="talk time in s")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="server [sip] workers")
    args = parser.parse_args()
    directory = args.workdir or Path(tempfile.mkdtemp(prefix="b2bua-soak-"))
    seconds = args.minutes * 60
    calls = int(args.rate * seconds)
    print(f"soak: {args.rate:g} cps for {args.minutes:g} min ({calls} calls), hold {args.hold:g} s")
    print(f"workdir {directory}; {uptime()}", flush=True)

    samples: list[tuple[float, int, dict[str, float]]] = []
    stop = threading.Event()
    with kit.lab(directory, bindings=2000, workers=args.workers) as lab:
        started = time.monotonic()

        def sample() -> None:
            while not stop.wait(SAMPLE_S):
                try:
                    rss = lab.server.usage().rss_bytes
                    gauges = lab.server.gauges() or {}
                except (OSError, ValueError):
                    continue
                samples.append((time.monotonic() - started, rss, gauges))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = lab.server.usage().cpu_s
        summary, cpu_s, wall_s = kit.run_calls(lab, rate=args.rate, calls=calls, hold_s=args.hold)
        stop.set()
        sampler.join(10)
        # The UAS stays up until the state is back to zero: it answers the
        # trunk keepalive, whose transaction would otherwise live 32 s (Timer F).
        state = lab.server.wait_idle(timeout=60)
        uas = lab.uas.stop()
        cpu_total = lab.server.usage().cpu_s - cpu_before
    print(summary.line())
    print("UAS: " + uas.line())
    calling = [s for s in samples if s[0] <= seconds]

    def median_mib(start: float, end: float) -> float:
        window = [rss for at, rss, _ in calling if start < at <= end]
        return statistics.median(window) / 2**20 if window else 0.0

    first_mib = median_mib(0, 60)
    # Each call's transactions live 32 s (64*T1) after it, so the state reaches its
    # steady size only some 40 s in: the first minute is partly that climb. The
    # second minute is the reference for "flat" when the run is long enough.
    second_mib = median_mib(60, 120) if seconds >= 180 else first_mib
    last_mib = median_mib(seconds - 60, seconds)
    shown = samples[:: max(1, len(samples) // 20)]
    print(
        f"RSS median first minute {first_mib:.1f} MiB, second minute {second_mib:.1f} MiB, "
        f"last minute {last_mib:.1f} MiB ({last_mib - second_mib:+.1f} MiB since the second); "
        f"{len(shown)} of {len(samples)} samples (one every {SAMPLE_S:g} s), in MiB: "
        + " ".join(f"{rss / 2**20:.0f}" for _, rss, _ in shown)
    )
    peak = max((g.get("b2bua_active_calls", 0.0) for _, _, g in samples), default=0.0)
    print(f"active calls peak {peak:.0f}; state after the run: {state}")
    print(
        f"server CPU {cpu_total:.1f} s ({1000 * cpu_s / max(1, summary.successful):.2f} s per "
        f"1,000 calls) in {wall_s:.0f} s; {uptime()}"
    )
    leaked = state is None or any(state.values())
    flat = last_mib - second_mib <= min(0.10 * second_mib, 20.0)
    ok = summary.failed == 0 and summary.successful == calls and not leaked and flat
    print(
        f"soak {'passed' if ok else 'FAILED'}: failed calls {summary.failed}, leaked "
        f"{'none' if not leaked else state}, memory {'flat' if flat else 'GROWING'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
