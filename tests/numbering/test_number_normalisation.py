"""Normalisation of middle and real numbers (DESIGN section 2), with property tests."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from b2bua.numbering import (
    NumberError,
    NumberErrorReason,
    NumberingRules,
    normalise_middle,
    normalise_real,
)

RULES = NumberingRules()

middle_numbers = st.from_regex(r"700[0-9]{12}", fullmatch=True)
mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
fixed_lines = st.one_of(
    st.from_regex(r"0(10|2[0-9])[0-9]{7,8}", fullmatch=True),
    st.from_regex(r"0[3-9][0-9]{2}[0-9]{6,8}", fullmatch=True),
)
real_numbers = st.one_of(mobiles, fixed_lines)


def international(national: str) -> str:
    """The number without its trunk 0, as written after a country code."""
    return national[1:] if national.startswith("0") else national


@st.composite
def decorated(draw: st.DrawFn, canonical: st.SearchStrategy[str]) -> tuple[str, str]:
    """(canonical number, one of its accepted spellings)."""
    national = draw(canonical)
    body = draw(
        st.sampled_from(
            [national, "+86" + international(national), "0086" + international(national),
             "86" + international(national), "+86" + national]
        )
    )  # fmt: skip
    form = draw(st.sampled_from(["plain", "tel", "sip", "sip-phone", "sips"]))
    if form == "tel":
        separated = "-".join(body[i : i + 4] for i in range(0, len(body), 4))
        return national, f"tel:{separated};phone-context=example"
    if form == "sip":
        return national, f"sip:{body}@carrier.example"
    if form == "sip-phone":
        return national, f"sip:{body}@10.0.0.1:5060;user=phone"
    if form == "sips":
        return national, f"sips:{body}@carrier.example;user=phone"
    return national, body


@given(decorated(middle_numbers))
def test_every_middle_form_normalises_to_the_15_digit_number(case: tuple[str, str]) -> None:
    canonical, spelled = case
    assert normalise_middle(spelled, RULES) == canonical


@given(decorated(real_numbers))
def test_every_real_form_normalises_to_the_national_number(case: tuple[str, str]) -> None:
    canonical, spelled = case
    assert normalise_real(spelled, RULES) == canonical


@given(st.text(max_size=40))
def test_anything_else_is_rejected_with_a_reason(value: str) -> None:
    for normalise, matches in (
        (normalise_middle, RULES.is_middle),
        (normalise_real, RULES.is_real),
    ):
        try:
            result = normalise(value, RULES)
        except NumberError as exc:
            assert isinstance(exc.reason, NumberErrorReason)
            assert isinstance(exc, ValueError)
            continue
        # Whatever is accepted comes out canonical and normalises to itself.
        assert matches(result)
        assert normalise(result, RULES) == result


@given(st.from_regex(r"[0-9]{1,20}", fullmatch=True))
def test_digit_strings_are_accepted_only_in_the_plan(digits: str) -> None:
    assume(not RULES.is_middle(digits))
    stripped = [digits]
    for prefix in ("0086", "86"):
        if digits.startswith(prefix):
            stripped.append(digits[len(prefix) :])
    if not any(RULES.is_middle(s) for s in stripped):
        with pytest.raises(NumberError) as info:
            normalise_middle(digits, RULES)
        assert isinstance(info.value.reason, NumberErrorReason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", NumberErrorReason.EMPTY),
        ("+4413812345678", NumberErrorReason.FOREIGN_COUNTRY_CODE),
        ("00113812345678", NumberErrorReason.FOREIGN_COUNTRY_CODE),
        ("138-1234-5678", NumberErrorReason.BAD_CHARACTERS),
        ("sip:carrier.example", NumberErrorReason.BAD_URI),
        ("12812345678", NumberErrorReason.NOT_A_REAL_NUMBER),
        ("1381234567", NumberErrorReason.NOT_A_REAL_NUMBER),
        ("70012345678901", NumberErrorReason.NOT_A_REAL_NUMBER),
        ("0" * 300, NumberErrorReason.TOO_LONG),
    ],
)
def test_rejections_name_their_reason(value: str, reason: NumberErrorReason) -> None:
    with pytest.raises(NumberError) as info:
        normalise_real(value, RULES)
    assert info.value.reason is reason


def test_middle_numbers_are_not_real_numbers_and_back() -> None:
    with pytest.raises(NumberError):
        normalise_real("700123456789012", RULES)
    with pytest.raises(NumberError):
        normalise_middle("13812345678", RULES)


def test_sip_uri_without_user_phone_is_refused_when_configured() -> None:
    strict = NumberingRules(require_user_phone=True)
    assert normalise_real("sip:+8613812345678@h;user=phone", strict) == "13812345678"
    with pytest.raises(NumberError) as info:
        normalise_real("sip:+8613812345678@h", strict)
    assert info.value.reason is NumberErrorReason.BAD_URI


def test_patterns_come_from_configuration() -> None:
    """Another country's masking plan needs only other patterns."""
    uk = NumberingRules(
        middle_pattern=r"070\d{8}", real_patterns=(r"07[1-9]\d{8}",), country_code="44"
    )
    assert normalise_middle("+447012345678", uk) == "07012345678"
    assert normalise_real("tel:+44-7911-123456", uk) == "07911123456"
    with pytest.raises(NumberError):
        normalise_real("13812345678", uk)
