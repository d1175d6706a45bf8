"""Middle-number and real-number patterns and their normalisation (DESIGN section 2).

Every number that enters the system (API input, operator import, the caller of an
inbound INVITE, the number dialled) goes through :func:`normalise_middle` or
:func:`normalise_real` so that the store and the in-memory index only ever hold one
canonical form: the 15-digit ``700...`` middle number and the national form of a
real number (mobile 11 digits, fixed line with its leading trunk ``0``).

Accepted input forms, for both kinds of number:

- the canonical national form: ``70012345678901``, ``13812345678``, ``01012345678``;
- with a country prefix: ``+86...``, ``0086...`` or ``86...`` (for fixed lines the
  trunk ``0`` is dropped after a country prefix, as in ``+861012345678``; keeping it,
  ``+86010...``, is tolerated);
- a ``tel:`` URI (``tel:+86-138-1234-5678``, RFC 3966 visual separators allowed) or
  a ``sip:``/``sips:`` URI whose user part is the number
  (``sip:+8613812345678@carrier;user=phone``).

The patterns and the country code are configuration, so another country's masking
plan needs no code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "NumberError",
    "NumberErrorReason",
    "NumberingRules",
    "normalise_middle",
    "normalise_real",
]

# RFC 3966 section 5.1.1: visual separators carry no meaning inside a phone number.
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
_MAX_INPUT_LENGTH = 256


class NumberErrorReason(StrEnum):
    """Why a number was rejected; the API puts it into the 422 message."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_URI = "bad_uri"
    BAD_CHARACTERS = "bad_characters"
    FOREIGN_COUNTRY_CODE = "foreign_country_code"
    NOT_A_MIDDLE_NUMBER = "not_a_middle_number"
    NOT_A_REAL_NUMBER = "not_a_real_number"


class NumberError(ValueError):
    """A number that does not match the configured numbering plan.

    ``reason`` is a :class:`NumberErrorReason`; ``value`` is the rejected input.
    """

    def __init__(self, reason: NumberErrorReason, value: str, detail: str = "") -> None:
        self.reason = reason
        self.value = value
        message = f"{reason.value}: {value!r}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)


@dataclass(frozen=True)
class NumberingRules:
    """The numbering plan: what a middle number and a real number look like.

    ``middle_pattern`` and each of ``real_patterns`` are full-match regular
    expressions over the national (canonical) digit string. ``country_code`` is the
    code stripped from ``+CC``, ``00CC`` and ``CC`` prefixes; ``trunk_prefix`` is the
    national prefix that fixed lines lose in international form. With
    ``require_user_phone`` a ``sip:`` URI is only read as a number when it carries
    ``;user=phone`` (RFC 3261 section 19.1.1).
    """

    middle_pattern: str = r"700\d{12}"
    real_patterns: tuple[str, ...] = (
        r"1[3-9]\d{9}",  # mobile
        r"(?:010|02\d)\d{7,8}|0[3-9]\d{2}\d{6,8}",  # fixed line: 0 + area code + subscriber
    )
    country_code: str = "86"
    international_prefixes: tuple[str, ...] = ("+", "00")
    trunk_prefix: str = "0"
    require_user_phone: bool = False
    _middle_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _real_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once; the normalisers run on every inbound call.
        object.__setattr__(self, "_middle_re", re.compile(self.middle_pattern))
        joined = "|".join(f"(?:{p})" for p in self.real_patterns)
        object.__setattr__(self, "_real_re", re.compile(joined))

    @classmethod
    def from_config(cls, section: Any) -> NumberingRules:
        """Rules from the ``[numbering]`` config section (missing attributes keep defaults)."""
        if section is None:
            return cls()
        defaults = cls()
        return cls(
            middle_pattern=getattr(section, "middle_pattern", defaults.middle_pattern),
            real_patterns=tuple(getattr(section, "real_patterns", defaults.real_patterns)),
            country_code=getattr(section, "country_code", defaults.country_code),
        )

    def is_middle(self, digits: str) -> bool:
        """True when ``digits`` already is a canonical middle number."""
        return self._middle_re.fullmatch(digits) is not None

    def is_real(self, digits: str) -> bool:
        """True when ``digits`` already is a canonical real number."""
        return self._real_re.fullmatch(digits) is not None

    def middle(self, value: str) -> str:
        """Normalise a middle number; see :func:`normalise_middle`."""
        return normalise_middle(value, self)

    def real(self, value: str) -> str:
        """Normalise a real number; see :func:`normalise_real`."""
        return normalise_real(value, self)


DEFAULT_RULES = NumberingRules()


def _strip_uri(value: str, rules: NumberingRules) -> str:
    """Return the number inside a ``tel:``/``sip:`` URI, or ``value`` unchanged."""
    lowered = value[:5].lower()
    if lowered.startswith("tel:"):
        number = value[4:].split(";", 1)[0]
        return number.translate(_VISUAL_SEPARATORS)
    if lowered.startswith(("sip:", "sips:")):
        rest = value[value.index(":") + 1 :]
        user, at, hostpart = rest.partition("@")
        if not at or not user or not hostpart:
            raise NumberError(NumberErrorReason.BAD_URI, value, "no user@host")
        user = user.split(";", 1)[0]  # RFC 3966 parameters inside the user part
        params = hostpart.lower().split(";")[1:]
        if rules.require_user_phone and "user=phone" not in params:
            raise NumberError(NumberErrorReason.BAD_URI, value, "missing user=phone")
        return user.translate(_VISUAL_SEPARATORS)
    return value


def _national_candidates(value: str, rules: NumberingRules) -> list[str]:
    """Digit strings ``value`` may stand for, most literal first."""
    if not value:
        raise NumberError(NumberErrorReason.EMPTY, value)
    if len(value) > _MAX_INPUT_LENGTH:
        raise NumberError(NumberErrorReason.TOO_LONG, value[:32] + "...")
    international = False
    for prefix in rules.international_prefixes:
        if value.startswith(prefix) and (prefix != "00" or value[2:].isdigit()):
            rest = value[len(prefix) :]
            if not rest.isdigit() or not rest.isascii():
                raise NumberError(NumberErrorReason.BAD_CHARACTERS, value)
            if not rest.startswith(rules.country_code):
                raise NumberError(NumberErrorReason.FOREIGN_COUNTRY_CODE, value)
            value = rest[len(rules.country_code) :]
            international = True
            break
    if not value.isdigit() or not value.isascii():
        raise NumberError(NumberErrorReason.BAD_CHARACTERS, value)
    if international:
        return [value, rules.trunk_prefix + value]
    candidates = [value]
    # A bare "86..." is a country prefix only if what follows is a valid number;
    # national numbers never start with the country code in the default plan.
    if value.startswith(rules.country_code):
        rest = value[len(rules.country_code) :]
        candidates += [rest, rules.trunk_prefix + rest]
    return candidates


def normalise_middle(value: str, rules: NumberingRules = DEFAULT_RULES) -> str:
    """Return the canonical middle number for ``value`` or raise :class:`NumberError`."""
    if rules._middle_re.fullmatch(value):
        return value  # fast path: already canonical
    raw = value.strip()
    for candidate in _national_candidates(_strip_uri(raw, rules), rules):
        if rules._middle_re.fullmatch(candidate):
            return candidate
    raise NumberError(NumberErrorReason.NOT_A_MIDDLE_NUMBER, value)


def normalise_real(value: str, rules: NumberingRules = DEFAULT_RULES) -> str:
    """Return the canonical (national) real number for ``value`` or raise :class:`NumberError`."""
    if rules._real_re.fullmatch(value):
        return value
    raw = value.strip()
    for candidate in _national_candidates(_strip_uri(raw, rules), rules):
        if rules._real_re.fullmatch(candidate):
            return candidate
    raise NumberError(NumberErrorReason.NOT_A_REAL_NUMBER, value)
