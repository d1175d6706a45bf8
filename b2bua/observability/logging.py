"""structlog JSON-lines logging, configured once at start.

Everything that logs (our modules through structlog, uvicorn and asyncio through
the standard library) ends up as one JSON object per line on one stream, so the
output can be shipped as is. Levels come from `LoggingConfig`: a global level
plus per-module levels applied to standard-library loggers by name.

Real phone numbers are masked at info level and above unless `log_numbers` is
set (DESIGN section 6: "no real number at info level unless configured").
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from b2bua.config import LoggingConfig


def _number_masker(patterns: Iterable[str]) -> structlog.types.Processor:
    """A processor that masks real numbers in string values at info level and above."""
    # Digits on either side would mean a longer number that merely contains a match
    # (a 700 middle number contains mobile-looking runs), so anchor on non-digits.
    alternatives = "|".join(f"(?:{pattern})" for pattern in patterns)
    number = re.compile(rf"(?<!\d)(?:\+?86|0086)?({alternatives})(?!\d)")

    def mask(match: re.Match[str]) -> str:
        return "*" * (len(match.group(0)) - 4) + match.group(0)[-4:]

    def processor(
        _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if method_name == "debug":
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str) and any(c.isdigit() for c in value):
                event_dict[key] = number.sub(mask, value)
        return event_dict

    return processor


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
    if not config.log_numbers and real_patterns:
        shared.append(_number_masker(real_patterns))

    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
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


def get_logger(name: str) -> Any:
    """A structlog logger named after the module (`get_logger(__name__)`)."""
    return structlog.get_logger(name)
