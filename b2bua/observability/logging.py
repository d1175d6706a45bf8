"""structlog JSON-lines logging, configured once at start.

Everything that logs (our modules through structlog, uvicorn and asyncio through
the standard library) ends up as one JSON object per line on one stream, so the
output can be shipped as is. Levels come from `LoggingConfig`: a global level
plus per-module levels applied to standard-library loggers by name.

Real phone numbers are masked at info level and above unless `log_numbers` is
set (DESIGN section 6: "no real number at info level unless configured").

Call events (five lines per call) are the one stream of logs on the SIP hot
path, so `event_logger` writes them straight to the same stream in the same
shape (`EventLineLogger`). Inside a running event loop those lines are gathered
for up to `LINE_FLUSH_DELAY_S` and written together (`LineBuffer`): one write
and flush per line, five per call, was about 4 % of the server's CPU at 200
calls per second (py-spy).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from b2bua.config import LoggingConfig


def text_masker(patterns: Iterable[str]) -> Callable[[str], str]:
    """A function masking every real number in a text: all but the last four digits."""
    # Digits on either side would mean a longer number that merely contains a match
    # (a 700 middle number contains mobile-looking runs), so anchor on non-digits.
    alternatives = "|".join(f"(?:{pattern})" for pattern in patterns)
    number = re.compile(rf"(?<!\d)(?:\+?86|0086)?({alternatives})(?!\d)")

    def mask(match: re.Match[str]) -> str:
        return "*" * (len(match.group(0)) - 4) + match.group(0)[-4:]

    def mask_text(text: str) -> str:
        # One C-level scan; most texts hold no number at all.
        return number.sub(mask, text) if number.search(text) is not None else text

    return mask_text


def _unmasked(text: str) -> str:
    return text


def _number_masker(mask_text: Callable[[str], str]) -> structlog.types.Processor:
    """A processor that masks real numbers in string values at info level and above."""

    def processor(
        _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if method_name == "debug":
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = mask_text(value)
        return event_dict

    return processor


# How long a call event line may wait to be written with others, and how many may wait.
LINE_FLUSH_DELAY_S = 0.1
LINE_FLUSH_COUNT = 512
ATOMIC_WRITE = 4096  # PIPE_BUF on Linux


class LineBuffer:
    """Lines on their way to `stream`, written together at most `delay_s` after the first.

    Outside a running event loop (tools, start-up, shutdown) every line is written
    at once. A line waits only for a timer of the loop, so an exception that ends
    the process still writes it (`flush` runs at exit); a SIGKILL loses at most
    the last `delay_s` of call event lines, which the call records outlive. Every
    other log line flushes the buffer before it is written (`_OrderedHandler`),
    so the stream stays in order.
    """

    def __init__(
        self, stream: TextIO, *, delay_s: float = LINE_FLUSH_DELAY_S, count: int = LINE_FLUSH_COUNT
    ) -> None:
        self.stream = stream
        self._delay_s = delay_s
        self._count = count
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        # The loop the timer was armed in: one that has since closed never fires it.
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def write(self, line: str) -> None:
        """Write `line` (with its newline) now or with the next batch."""
        lines = self._lines
        lines.append(line)
        if len(lines) >= self._count:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._timer_loop is not loop:
            self._timer_loop = loop
            self._timer = loop.call_later(self._delay_s, self.flush)

    def flush(self) -> None:
        """Write every waiting line, whole lines of at most `ATOMIC_WRITE` octets per write.

        SIP workers share one stdout: on a pipe only writes up to PIPE_BUF are
        never interleaved with another process's, so no line is cut by a batch
        boundary. (Lines are ASCII: characters are octets.)
        """
        timer, loop = self._timer, self._timer_loop
        if timer is not None and loop is not None and not loop.is_closed():
            timer.cancel()
        self._timer = self._timer_loop = None
        lines = self._lines
        if not lines:
            return
        stream = self.stream
        chunk: list[str] = []
        size = 0
        for line in lines:
            if size and size + len(line) > ATOMIC_WRITE:
                stream.write("".join(chunk))
                stream.flush()
                chunk.clear()
                size = 0
            chunk.append(line)
            size += len(line)
        lines.clear()
        stream.write("".join(chunk))
        stream.flush()


class _OrderedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that lets the call event lines waiting before it go first."""

    def __init__(self, lines: LineBuffer) -> None:
        super().__init__(lines.stream)
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.flush()
        super().emit(record)


class _Destination:
    """Where `configure_logging` sent the logs, for loggers built after it."""

    lines: LineBuffer | None = None  # holds the stream too
    modules: tuple[str, ...] = ()  # loggers given their own level, reset on reconfiguring
    mask_text: Callable[[str], str] = staticmethod(_unmasked)


def configure_logging(
    config: LoggingConfig,
    *,
    real_patterns: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Route structlog and standard logging to JSON lines on `stream` (stdout).

    Safe to call again (tests, reloads): handlers are replaced, not added.
    """
    level = logging.getLevelName(config.level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    _Destination.mask_text = _unmasked
    if not config.log_numbers and real_patterns:
        _Destination.mask_text = text_masker(real_patterns)
        shared.append(_number_masker(_Destination.mask_text))

    stream = stream if stream is not None else sys.stdout
    if _Destination.lines is not None:
        _Destination.lines.flush()
    else:
        atexit.register(flush_logs)
    lines = _Destination.lines = LineBuffer(stream)
    handler = _OrderedHandler(lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _Destination.modules:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _Destination.modules = tuple(config.modules)
    for name, module_level in config.modules.items():
        logging.getLogger(name).setLevel(module_level.upper())
    # uvicorn's access log is one line per HTTP request; metrics cover that.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)

    # Below the lowest level any module wants, calls return at once without
    # building an event (the hot path logs at debug).
    lowest = min([level, *(logging.getLevelName(v.upper()) for v in config.modules.values())])
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        cache_logger_on_first_use=True,
    )


def flush_logs() -> None:
    """Write the call event lines still waiting (at exit, before a fork)."""
    if _Destination.lines is not None:
        _Destination.lines.flush()


def get_logger(name: str) -> Any:
    """A structlog logger named after the module (`get_logger(__name__)`)."""
    return structlog.get_logger(name)


def mask_text(text: str) -> str:
    """`text` with every real number masked, as info-level logs show it.

    For hot-path loggers (`event_logger`) that mask what they log themselves;
    unchanged when `log_numbers` is set or before `configure_logging`.
    """
    return _Destination.mask_text(text)


class EventLineLogger:
    """JSON lines for the hot path: the same fields as every other line, built directly.

    `event`, `level`, `logger` and an ISO 8601 UTC `timestamp` are added to the
    caller's fields, which are encoded with the C JSON encoder and handed to a
    `LineBuffer` (written with the next batch, see there for what a crash loses).
    Values are not scanned for real numbers: callers mask them (`mask_text`).
    """

    __slots__ = ("_debug", "_info", "_info_tail", "_lines", "_name", "_prefix", "_second")

    def __init__(self, name: str, lines: LineBuffer, level: int) -> None:
        self._name = name
        self._lines = lines
        self._info = level <= logging.INFO
        self._debug = level <= logging.DEBUG
        self._second = -1
        self._prefix = ""
        self._info_tail = f'"level": "info", "logger": {_encode_string(name)}, "timestamp": "'

    def _timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        fields["event"] = event
        fields["level"] = level
        fields["logger"] = self._name
        fields["timestamp"] = self._timestamp()
        self._lines.write(_encode_json(fields) + "\n")

    @property
    def info_enabled(self) -> bool:
        """Whether info lines are written (callers skip building them otherwise)."""
        return self._info

    def info(self, event: str, **fields: Any) -> None:
        """One info line, unless the logger's level is above info."""
        if self._info:
            self._write("info", event, fields)

    def info_members(self, event: str, members: str) -> None:
        """One info line whose fields the caller has already encoded.

        `members` is the inside of a JSON object (`"a": 1, "b": "x"`, see
        `json_members`); `event`, `level`, `logger` and `timestamp` follow it, as
        in every other line. Call events use this: their five lines share most
        fields, which are encoded once per call instead of once per line.
        """
        if self._info:
            self._lines.write(
                f'{{{members}, "event": "{event}", {self._info_tail}{self._timestamp()}"}}\n'
            )

    def debug(self, event: str, **fields: Any) -> None:
        """One debug line, when the logger's level allows it."""
        if self._debug:
            self._write("debug", event, fields)


# Values that JSON cannot hold are written as their repr, as structlog's renderer does.
_encode_json = json.JSONEncoder(default=repr).encode
# The C string encoder behind `json.dumps(str)`, without the encoder set-up per call.
_encode_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def json_members(fields: Mapping[str, str | int | None]) -> str:
    """The inside of a JSON object for `fields`, as `json.dumps` spells it (`"a": 1, "b": null`).

    For `EventLineLogger.info_members`: strings, integers and None only, the
    values call events carry; anything else is a programming error.
    """
    parts = []
    for key, value in fields.items():
        if isinstance(value, str):
            encoded = _encode_string(value)
        elif value is None:
            encoded = "null"
        elif isinstance(value, int) and not isinstance(value, bool):
            encoded = str(value)
        else:
            raise TypeError(f"{key}: {type(value).__name__} is not a call event field")
        parts.append(f"{_encode_string(key)}: {encoded}")
    return ", ".join(parts)


def event_logger(name: str) -> Any:
    """A hot-path logger writing to the stream and at the level `configure_logging` set.

    Call events are five lines per call; through structlog and the standard
    library they cost about a third of the server's CPU at 200 calls per
    second, through `EventLineLogger` a small fraction of that. The level is
    the standard-library level of `name` at the time of the call. Before
    `configure_logging` it is an ordinary `get_logger(name)`.
    """
    lines = _Destination.lines
    if lines is None:
        return get_logger(name)
    return EventLineLogger(name, lines, logging.getLogger(name).getEffectiveLevel())
