"""One `/metrics` exposition made from the expositions of every worker process.

The main process serves `/metrics`; each other worker sends it the text of its own
registry (``generate_latest``). :func:`merge_expositions` turns those texts into one
exposition with the same metric names and labels as a single process, each series
combined over all processes, so dashboards and alert rules need no change.

Most series add up (calls, transactions, memory, open fds, histogram buckets). The
exceptions are in :data:`COMBINE_BY_NAME` and :func:`combiner_for`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
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
    # The worst loop is the one that delays calls; the fd limit is per process.
    "b2bua_event_loop_lag_last_seconds": max,
    "process_max_fds": max,
    # Every worker loads the same binding index; a failure streak is per writer.
    "b2bua_bindings_active": max,
    "b2bua_cdr_write_failures": max,
    # The server started when its oldest process did.
    "process_start_time_seconds": min,
}

# Types the 0.0.4 text format cannot carry, written the way generate_latest writes them.
_TEXT_FORMAT_TYPE = {
    "unknown": "untyped",
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
}

# Typed once here: prometheus_client leaves it unannotated (mypy strict would refuse the call).
_format_value: Callable[[float], str] = floatToGoString

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def combiner_for(family: Metric, sample_name: str) -> Combine:
    """How the values of one sample from every process combine: the table, then the suffix
    rules (``_created`` is a timestamp, so the earliest; ``*_info`` is a constant 1 whose
    labels carry the information, so one copy), then sum."""
    if sample_name in COMBINE_BY_NAME:
        return COMBINE_BY_NAME[sample_name]
    if sample_name.endswith("_created"):
        return min
    if family.type == "info" or family.name.endswith("_info"):
        return _first
    return math.fsum


@dataclass(frozen=True)
class MergedExposition:
    """The merged exposition text and, by position in the input, the texts left out
    because they did not parse (index -> parser message, for the caller to log)."""

    text: str
    skipped: dict[int, str]


def merge_with_skipped(texts: Sequence[str]) -> MergedExposition:
    """Merge expositions as :func:`merge_expositions` does, and say which were skipped.

    A text is parsed whole before any of it is used, so one that fails halfway adds
    nothing (the parser is lazy and raises only ``ValueError``)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, list[float]]] = {}
    skipped: dict[int, str] = {}
    for position, text in enumerate(texts):
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError as error:
            skipped[position] = str(error) or "unparsable exposition"
            continue
        for family in parsed:
            families.setdefault(family.name, family)
            by_sample = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                by_sample.setdefault(key, []).append(sample.value)
    lines: list[str] = []
    for name, family in families.items():
        lines.extend(_family_header(family))
        for (sample_name, labels), sample_values in values[name].items():
            combined = combiner_for(family, sample_name)(sample_values)
            lines.append(f"{sample_name}{_label_text(labels)} {_format_value(combined)}\n")
    return MergedExposition("".join(lines), skipped)


def merge_expositions(texts: Sequence[str]) -> str:
    """One exposition (text format 0.0.4) combining every process's exposition.

    ``texts[0]`` is the main process's own, the rest the workers'; any may be empty.
    Families and samples keep the order they were first seen in; samples with the same
    name and labels are combined (see :func:`combiner_for`). Texts that do not parse are
    left out; use :func:`merge_with_skipped` to learn which."""
    return merge_with_skipped(texts).text


def _family_header(family: Metric) -> list[str]:
    # The parser drops `_total` from a counter's family name; generate_latest writes
    # HELP and TYPE with it, and so do we, so the output matches one process's.
    name = f"{family.name}_total" if family.type == "counter" else family.name
    help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    text_type = _TEXT_FORMAT_TYPE.get(family.type, family.type)
    return [f"# HELP {name} {help_text}\n", f"# TYPE {name} {text_type}\n"]


def _label_text(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in labels)
    return "{" + pairs + "}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
