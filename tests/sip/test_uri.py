"""URIs and name-addr values: sip, sips, tel, quoted names, escapes, parameters."""

from __future__ import annotations

import pytest

from b2bua.sip import ParseError, parse_name_addr, parse_uri
from b2bua.sip.uri import unescape


def test_sip_uri_parts() -> None:
    uri = parse_uri("sip:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi")
    assert (uri.scheme, uri.user, uri.password) == ("sip", "alice", "secret")
    assert (uri.host, uri.port) == ("[2001:db8::1]", 5061)
    assert uri.param("transport") == "tcp"
    assert uri.param("LR") == ""
    assert uri.headers == "Subject=hi"
    assert str(uri) == "sip:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi"


def test_sips_and_tel_and_other_schemes() -> None:
    assert parse_uri("SIPS:bob@example.com").scheme == "sips"
    tel = parse_uri("tel:+8613812345678;phone-context=example.com")
    assert tel.scheme == "tel" and tel.user == "+8613812345678"
    assert tel.param("phone-context") == "example.com"
    assert str(tel) == "tel:+8613812345678;phone-context=example.com"
    mailto = parse_uri("mailto:a@example.com")
    assert str(mailto) == "mailto:a@example.com"


@pytest.mark.parametrize(
    "text",
    ["sip:", "nocolon", "sip:user@", "sip:a b@host", "sip:host:70000", "sip:@host", "tel:"],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"Zhang \\"San\\"" <sip:139@h;user=phone>;tag=1;x')
    assert quoted.display_name == 'Zhang "San"'
    assert quoted.uri.param("user") == "phone"
    assert quoted.tag == "1"
    assert quoted.param("x") == ""
    assert parse_name_addr(str(quoted)) == quoted
    token = parse_name_addr("Alice Smith <sip:alice@h>")
    assert token.display_name == "Alice Smith"
    # addr-spec: parameters belong to the header, not to the URI
    bare = parse_name_addr("sip:bob@h;tag=77")
    assert bare.tag == "77" and bare.uri.params == []
    empty_name = parse_name_addr("<tel:+86139>")
    assert empty_name.display_name is None and empty_name.uri.user == "+86139"


@pytest.mark.parametrize(
    "text",
    ['"unterminated <sip:a@h>', "<sip:a@h", "sip:a@h?x=1", "<sip:a@h> junk", "a,b <sip:a@h>"],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(text)


def test_unescape() -> None:
    assert unescape("I%20have%20spaces") == "I have spaces"
    assert unescape("100%") == "100%"
    assert unescape("%zz") == "%zz"
