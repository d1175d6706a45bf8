"""No leaks: after a test's calls end, the server holds no call, dialog or transaction.

`assert_no_leaks(server)` polls the server's Prometheus `/metrics` on its HTTP
port until the gauges `b2bua_active_calls`, `b2bua_dialogs_active` and
`b2bua_transactions_active` are all 0, or fails with their last values.
Transactions linger after a call by design (Timer J/K/I up to 64*T1 or T4,
RFC 3261 section 17), so the poll runs against a deadline.

While the server has no `/metrics` yet (404), the helper falls back to what the
log shows: every call the server accepted (`call_attempted` without a
rejection) must have a `call_ended`. That covers calls only; a warning says the
dialog and transaction gauges could not be checked.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import warnings

from integration.server import Server

GAUGES = ("b2bua_active_calls", "b2bua_dialogs_active", "b2bua_transactions_active")
POLL_INTERVAL_S = 0.2


class MetricsUnavailable(Exception):
    """The server answers 404 on /metrics (not wired yet)."""


def parse_gauges(text: str, names: tuple[str, ...] = GAUGES) -> dict[str, float]:
    """Sum each named metric over its label sets in Prometheus text exposition format."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, rest = line.partition(" ")
        name = name_part.partition("{")[0]
        if "{" in name_part and "}" not in name_part:
            # Label values may hold spaces: the value follows the closing brace.
            labels_end = line.index("}")
            rest = line[labels_end + 1 :]
        if name in names:
            value = rest.split()[0]
            values[name] = values.get(name, 0.0) + float(value)
    return values


def read_gauges(server: Server, timeout: float = 2.0) -> dict[str, float]:
    """The three gauges from the server's /metrics; MetricsUnavailable on 404."""
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise MetricsUnavailable(url) from error
        raise
    return parse_gauges(text)


def open_calls_in_log(server: Server) -> list[str]:
    """Our call ids that the log shows accepted (not rejected) but never ended."""
    started: set[str] = set()
    ended: set[str] = set()
    for event in server.log_events():
        kind = event.get("event")
        if kind == "call_attempted" and not event.get("rejection"):
            started.add(str(event.get("call_id")))
        elif kind == "call_ended":
            ended.add(str(event.get("call_id")))
    return sorted(started - ended)


def assert_no_leaks(server: Server, timeout: float = 10.0) -> None:
    """Poll until no call, dialog or transaction is active; fail after `timeout` s."""
    assert server.is_alive(), f"b2bua died:\n{server.log_path.read_text()[-4000:]}"
    deadline = time.monotonic() + timeout
    last: dict[str, float] | str = {}
    while True:
        try:
            last = read_gauges(server)
        except MetricsUnavailable:
            _assert_calls_ended_in_log(server, deadline)
            return
        except (OSError, ValueError) as error:
            last = f"unreadable /metrics: {error}"
        else:
            missing = [name for name in GAUGES if name not in last]
            assert not missing, f"/metrics lacks {missing}"
            if all(last[name] == 0 for name in GAUGES):
                return
        if time.monotonic() >= deadline:
            raise AssertionError(f"still active after {timeout}s: {last}")
        time.sleep(POLL_INTERVAL_S)


def _assert_calls_ended_in_log(server: Server, deadline: float) -> None:
    warnings.warn(
        "b2bua has no /metrics yet: only checked that every call ended (log), "
        "not the dialog and transaction gauges",
        stacklevel=3,
    )
    while True:
        open_calls = open_calls_in_log(server)
        if not open_calls:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"calls never ended: {open_calls[:20]} ({len(open_calls)})")
        time.sleep(POLL_INTERVAL_S)
