"""RFC 4475 torture messages: valid ones parse, invalid ones raise ParseError.

The bytes come from ../shared/rfc4475 (see its README for provenance and for
the invalid messages an element may still accept).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from b2bua.sip import ParseError, Request, Response, parse_message

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "rfc4475"
MUST_REJECT = {"badinv01", "clerr", "ncl", "scalar02", "scalarlg", "mismatch01", "bigcode"}
MAY_ACCEPT = {
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch02",
}


def _corpus(kind: str) -> list[Path]:
    files = sorted((CORPUS / kind).glob("*.dat"))
    assert files, f"RFC 4475 corpus not found under {CORPUS / kind}"
    return files


def test_corpus_is_complete() -> None:
    assert len(_corpus("valid")) == 13
    invalid = {path.stem for path in _corpus("invalid")}
    assert invalid == MUST_REJECT | MAY_ACCEPT


@pytest.mark.parametrize("path", _corpus("valid"), ids=lambda p: p.stem)
def test_valid_messages_parse_and_round_trip(path: Path) -> None:
    message = parse_message(path.read_bytes())
    again = parse_message(message.to_bytes())
    assert again == message
    # Every message in the corpus carries the fields a transaction needs.
    assert message.call_id
    assert message.top_via.transport in {"UDP", "TCP", "TLS", "SCTP", "UNKNOWN"}


@pytest.mark.parametrize(
    "path", [p for p in _corpus("invalid") if p.stem in MUST_REJECT], ids=lambda p: p.stem
)
def test_invalid_messages_raise_parse_error(path: Path) -> None:
    with pytest.raises(ParseError):
        parse_message(path.read_bytes())


@pytest.mark.parametrize(
    "path", [p for p in _corpus("invalid") if p.stem in MAY_ACCEPT], ids=lambda p: p.stem
)
def test_tolerated_invalid_messages_parse_or_raise_parse_error(path: Path) -> None:
    with contextlib.suppress(ParseError):
        parse_message(path.read_bytes())


def _parse(name: str) -> Request | Response:
    return parse_message((CORPUS / "valid" / f"{name}.dat").read_bytes())


def test_wsinv_whitespace_and_folding() -> None:
    message = _parse("wsinv")
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.to_addr.tag == "1918181833n"
    assert message.from_addr.display_name == 'J Rosenberg \\"'
    assert message.from_addr.tag == "98asjd8"
    assert message.cseq.number == 9
    assert message.headers.get("max-forwards") == "0068"
    assert message.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    vias = message.vias
    assert [v.host for v in vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert vias[1].branch == "z9hG4bK9ikj8"
    assert vias[2].branch == "z9hG4bK30239"
    assert len(message.body) == 150
    contact = message.contact
    assert contact is not None and contact.display_name == 'Quoted string ""'
    assert contact.param("q") == "0.33"


def test_compact_forms_and_case() -> None:
    longreq = _parse("longreq")
    assert len(longreq.vias) == 34
    assert longreq.from_addr.tag is not None and longreq.from_addr.tag.startswith("1298298")
    esc01 = _parse("esc01")
    assert esc01.headers.get("Content-Type") == "application/sdp"
    assert esc01.call_id == "esc01.239409asdfakjkn23onasd0-3234"


def test_dblreq_ignores_octets_beyond_content_length() -> None:
    message = _parse("dblreq")
    assert isinstance(message, Request)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_responses_without_reason_and_with_utf8_reason() -> None:
    noreason = _parse("noreason")
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""
    unreason = _parse("unreason")
    assert isinstance(unreason, Response) and unreason.status == 200
    assert "простое" in unreason.reason
    assert parse_message(unreason.to_bytes()) == unreason


def test_semiuri_user_with_semicolon() -> None:
    message = _parse("semiuri")
    assert isinstance(message, Request)
    uri = message.request_uri
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == []
    assert len(message.headers.get_all("accept")) == 6


def test_escaped_header_name_is_not_contact() -> None:
    message = _parse("esc02")
    assert len(message.headers.get_all("contact")) == 2
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_badvers_answers_505() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message((CORPUS / "invalid" / "badvers.dat").read_bytes())
    assert caught.value.status_hint == 505
