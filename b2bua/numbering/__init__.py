"""Numbering plan: middle-number and real-number patterns and normalisation."""

from b2bua.numbering.rules import (
    DEFAULT_RULES,
    NumberError,
    NumberErrorReason,
    NumberingRules,
    normalise_middle,
    normalise_real,
)

__all__ = [
    "DEFAULT_RULES",
    "NumberError",
    "NumberErrorReason",
    "NumberingRules",
    "normalise_middle",
    "normalise_real",
]
