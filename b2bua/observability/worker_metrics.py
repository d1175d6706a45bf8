"""One `/metrics` exposition made from the expositions of every worker process.

The main process serves `/metrics`; each other worker sends it the text of its own
registry (``generate_latest``). :func:`merge_expositions` turns those texts into one
exposition with the same metric names and labels as a single process, each series
combined over all processes, so dashboards and alert rules need no change.

Most series add up (calls, transactions, memory, open fds, histogram buckets). The
exceptions are in :data:`COMBINE_BY_NAME` and :func:`combiner_for`.

The texts are merged line by line rather than through prometheus_client's parser:
every process runs the same code, so a series is written identically in each
(same label order and escaping), and its line up to the value is its key. The
parser took about 24 ms for two 85 KB expositions, on worker 0's event loop,
which is also a SIP loop; this takes about a tenth of that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

__all__ = [
    "COMBINE_BY_NAME",
    "MergedExposition",
    "combiner_for",
    "merge_expositions",
    "merge_with_skipped",
]

Combine = Callable[[Sequence[float]], float]


def _first(values: Sequence[float]) -> float:
    return values[0]


# Sample name -> how its values from all processes become one. Unlisted: summed.
COMBINE_BY_NAME: dict[str, Combine] = {
    # The server is only up if every worker is; one draining worker means draining.
    "b2bua_listener_up": min,
    "b2bua_trunk_up": min,
    "b2bua_store_up": min,
    "b2bua_draining": max,
    # The worst loop is the one that delays (and sheds) calls; the fd limit is per process.
    "b2bua_event_loop_lag_last_seconds": max,
    "b2bua_sip_queue_delay_seconds": max,
    "b2bua_load_shed_ratio": max,
    "process_max_fds": max,
    # Every worker loads the same binding index; a failure streak is per writer.
    "b2bua_bindings_active": max,
    "b2bua_cdr_write_failures": max,
    # The server started when its oldest process did.
    "process_start_time_seconds": min,
}

# Typed once here: prometheus_client leaves it unannotated (mypy strict would refuse the call).
_format_value: Callable[[float], str] = floatToGoString


def combiner_for(family_type: str, sample_name: str) -> Combine:
    """How the values of one sample from every process combine: the table, then the suffix
    rules (``_created`` is a timestamp, so the earliest; ``*_info`` is a constant 1 whose
    labels carry the information, so one copy), then sum."""
    if sample_name in COMBINE_BY_NAME:
        return COMBINE_BY_NAME[sample_name]
    if sample_name.endswith("_created"):
        return min
    if family_type == "info" or sample_name.endswith("_info"):
        return _first
    return math.fsum


@dataclass
class _Family:
    """One family of one exposition: its HELP/TYPE lines and its series in order."""

    header: list[str]
    type: str = "untyped"
    values: dict[str, list[float]] = field(default_factory=dict)


def _parse(text: str) -> dict[str, _Family]:
    """Families by name; ValueError on a line that is not a comment or `series value`."""
    families: dict[str, _Family] = {}
    current = families.setdefault("", _Family([]))
    for line in text.split("\n"):
        if not line:
            continue
        if line[0] == "#":
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] == "HELP":
                current = families.setdefault(parts[2], _Family([]))
                current.header.append(line)
            elif len(parts) == 4 and parts[1] == "TYPE":
                current = families.setdefault(parts[2], _Family([]))
                current.header.append(line)
                current.type = parts[3]
            continue
        series, space, value = line.rpartition(" ")
        if not space or not series or series[0] in " {":
            raise ValueError(f"not a sample line: {line[:80]!r}")
        current.values.setdefault(series, []).append(float(value))
    return families


@dataclass(frozen=True)
class MergedExposition:
    """The merged exposition text and, by position in the input, the texts left out
    because they did not parse (index -> the reason, for the caller to log)."""

    text: str
    skipped: dict[int, str]


def merge_with_skipped(texts: Sequence[str]) -> MergedExposition:
    """Merge expositions as :func:`merge_expositions` does, and say which were skipped.

    A text is read whole before any of it is used, so one that fails halfway adds
    nothing."""
    merged: dict[str, _Family] = {}
    skipped: dict[int, str] = {}
    for position, text in enumerate(texts):
        try:
            families = _parse(text)
        except ValueError as error:
            skipped[position] = str(error) or "unparsable exposition"
            continue
        for name, family in families.items():
            into = merged.get(name)
            if into is None:
                merged[name] = _Family(family.header, family.type, family.values)
                continue
            for series, values in family.values.items():
                into.values.setdefault(series, []).extend(values)
    lines: list[str] = []
    for family in merged.values():
        lines.extend(family.header)
        for series, values in family.values.items():
            sample_name = series.partition("{")[0]
            value = (
                values[0] if len(values) == 1 else combiner_for(family.type, sample_name)(values)
            )
            lines.append(f"{series} {_format_value(value)}")
    return MergedExposition("".join(f"{line}\n" for line in lines), skipped)


def merge_expositions(texts: Sequence[str]) -> str:
    """One exposition (text format 0.0.4) combining every process's exposition.

    ``texts[0]`` is the main process's own, the rest the workers'; any may be empty.
    Families and series keep the order they were first seen in; series with the same
    name and labels are combined (see :func:`combiner_for`). Texts that do not parse are
    left out; use :func:`merge_with_skipped` to learn which."""
    return merge_with_skipped(texts).text
