"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966) and name-addr values.

`parse_uri` handles the schemes a carrier trunk sends; any other absolute URI is
kept opaque so it can be relayed unchanged. `parse_name_addr` handles the
From/To/Contact/P-Asserted-Identity grammar: a quoted or token display name,
`<uri>` or a bare addr-spec, and header parameters such as `tag`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from b2bua.sip.errors import ParseError

_HEX = "0123456789abcdefABCDEF"
_URI_FORBIDDEN = re.compile(r"[ \t<>]")
_HOST_FORBIDDEN = re.compile(r"[ \t<>\"@]")
# The common shape of carrier URIs, matched in one step; anything else takes
# the general path below.
_SIP_URI_FAST = re.compile(
    r"(sips?):(?:([^:@;?<>\s\"]+)(?::([^@;?<>\s\"]*))?@)?"
    r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"(?:;([^?<>\s\";@][^?<>\s\"@]*))?(?:\?([^<>\s\"]*))?"
)


# The common shape of a name-addr, `["display" | token] <uri>[;params]`, matched in
# one step: a quoted name without escapes, a token name without the characters
# that would need quotes. Anything else (escapes, addr-spec) takes the general path.
_NAME_ADDR_FAST = re.compile(r'(?:"([^"\\]*)"[ \t]*|([^",;<>@]*?))<([^<>]*)>[ \t]*(?:;(.*))?', re.S)


def unescape(text: str) -> str:
    """Decode %XX escapes (RFC 3261 section 19.1.2); a stray `%` is kept as is."""
    if "%" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if (
            char == "%"
            and index + 2 < len(text)
            and text[index + 1] in _HEX
            and text[index + 2] in _HEX
        ):
            out.append(chr(int(text[index + 1 : index + 3], 16)))
            index += 3
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _split_params(text: str) -> list[tuple[str, str | None]]:
    if text.isprintable() and " " not in text:
        # No whitespace anywhere (every other space character is unprintable),
        # so nothing needs stripping.
        params: list[tuple[str, str | None]] = []
        for raw in text.split(";"):
            name, eq, value = raw.partition("=")
            if not name:
                raise ParseError(f"empty parameter name in {text!r}")
            params.append((name, value if eq else None))
        return params
    params = []
    for raw in text.split(";"):
        name, eq, value = raw.partition("=")
        name = name.strip()
        if not name:
            raise ParseError(f"empty parameter name in {text!r}")
        params.append((name, value.strip() if eq else None))
    return params


def _format_params(params: list[tuple[str, str | None]]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _get_param(params: Sequence[tuple[str, str | None]], name: str) -> str | None:
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return value if value is not None else ""
    return None


def _set_param(params: list[tuple[str, str | None]], name: str, value: str | None) -> None:
    lowered = name.lower()
    for index, (key, _) in enumerate(params):
        if key.lower() == lowered:
            params[index] = (key, value)
            return
    params.append((name, value))


def _drop_param(params: list[tuple[str, str | None]], name: str) -> None:
    lowered = name.lower()
    params[:] = [(key, value) for key, value in params if key.lower() != lowered]


@dataclass(slots=True)
class Uri:
    """A parsed URI. For `sip`/`sips`: user, password, host, port, params, headers.

    For `tel` the number is in `user` and `host` is empty. Other schemes keep
    their text in `opaque`.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    headers: str | None = None
    opaque: str | None = None

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (`""` for a flag such as `lr`), or None."""
        return _get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        """Set a parameter, keeping its position if present; `None` writes a flag."""
        _set_param(self.params, name, value)

    def drop_param(self, name: str) -> None:
        """Remove a parameter wherever it is."""
        _drop_param(self.params, name)

    @property
    def host_port(self) -> str:
        """`host[:port]`, brackets kept on IPv6 references."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{self.host_port}{_format_params(self.params)}"
        if self.headers:
            text += "?" + self.headers
        return text


def _parse_host_port(text: str, whole: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {whole!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ParseError(f"bad host in {whole!r}")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = ""
    if not host or _HOST_FORBIDDEN.search(host):
        raise ParseError(f"bad host in {whole!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise ParseError(f"bad port in {whole!r}")
    return host, int(port_text)


def parse_uri(text: str) -> Uri:
    """Parse a URI; raise ParseError if a `sip:`, `sips:` or `tel:` URI is malformed."""
    fast = _SIP_URI_FAST.fullmatch(text)
    if fast is not None:
        groups = fast.groups()
        port_text = groups[4]
        port = int(port_text) if port_text is not None else None
        if port is None or port <= 65535:  # a bad port is reported by the general path
            params_text = groups[5]
            fast_params = _split_params(params_text) if params_text else []
            return Uri(groups[0], groups[1], groups[2], groups[3], port, fast_params, groups[6])
    scheme, colon, rest = text.strip().partition(":")
    if not colon or not scheme or not rest:
        raise ParseError(f"not a URI: {text!r}")
    if _URI_FORBIDDEN.search(text.strip()):
        raise ParseError(f"whitespace or brackets inside URI {text!r}")
    scheme_key = scheme.lower()
    if scheme_key == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise ParseError(f"empty tel number in {text!r}")
        return Uri("tel", user=number, params=_split_params(params) if params else [])
    if scheme_key not in ("sip", "sips"):
        return Uri(scheme_key, opaque=rest)
    rest, question, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, pw_colon, pw = userinfo.partition(":")
        password = pw if pw_colon else None
        if not user:
            raise ParseError(f"empty user part in {text!r}")
    host_port, _, params = rest.partition(";")
    host, port = _parse_host_port(host_port, text)
    return Uri(
        scheme_key,
        user=user,
        password=password,
        host=host,
        port=port,
        params=_split_params(params) if params else [],
        headers=headers if question else None,
    )


@dataclass(slots=True)
class NameAddr:
    """`display-name <uri>;params` as in From, To, Contact and identity headers."""

    uri: Uri
    display_name: str | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def tag(self) -> str | None:
        """The `tag` parameter (dialog identifier half), or None."""
        return _get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        """Value of a header parameter (`""` for a flag), or None."""
        return _get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        """Set a header parameter such as `tag`."""
        _set_param(self.params, name, value)

    def __str__(self) -> str:
        name = ""
        if self.display_name is not None:
            name = quote_display_name(self.display_name) + " "
        return f"{name}<{self.uri}>{_format_params(self.params)}"


def quote_display_name(name: str) -> str:
    """Render a display name as a quoted-string, escaping `"` and `\\`."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted-string starting at text[start] == '"'; return (content, next index)."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                break
            out.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ParseError(f"unterminated quoted string in {text!r}")


# name-addr text -> the parts of its last parse. A dialog repeats its From and To
# in every request and response, so each value is parsed once; every caller
# still gets objects of its own to change. Cleared when full.
_NAME_ADDR_CACHE_MAX = 4096
_NAME_ADDR_CACHED_LENGTH = 256
_name_addr_cache: dict[str, tuple[_UriParts, str | None, tuple[tuple[str, str | None], ...]]] = {}
_UriParts = tuple[
    str,
    str | None,
    str | None,
    str,
    int | None,
    tuple[tuple[str, str | None], ...],
    str | None,
    str | None,
]


def parse_name_addr(text: str) -> NameAddr:
    """Parse a From/To/Contact style value; raise ParseError if it is malformed."""
    cached = _name_addr_cache.get(text)
    if cached is not None:
        parts, display, params = cached
        uri = Uri(
            parts[0], parts[1], parts[2], parts[3], parts[4], list(parts[5]), parts[6], parts[7]
        )
        return NameAddr(uri, display, list(params))
    address = _parse_name_addr(text)
    if len(text) > _NAME_ADDR_CACHED_LENGTH:
        return address  # a peer's huge values are not kept
    uri = address.uri
    if len(_name_addr_cache) >= _NAME_ADDR_CACHE_MAX:
        _name_addr_cache.clear()
    _name_addr_cache[text] = (
        (
            uri.scheme,
            uri.user,
            uri.password,
            uri.host,
            uri.port,
            tuple(uri.params),
            uri.headers,
            uri.opaque,
        ),
        address.display_name,
        tuple(address.params),
    )
    return address


def name_addr_tag(text: str) -> str | None:
    """The `tag` parameter of a From/To value, or None; ParseError if it is malformed.

    The same as `parse_name_addr(text).tag`, without building the objects when
    the value was parsed before (a dialog's From and To repeat in every message).
    """
    cached = _name_addr_cache.get(text)
    if cached is None:
        return parse_name_addr(text).tag
    return _get_param(cached[2], "tag")


def _parse_name_addr(text: str) -> NameAddr:
    value = text.strip()
    fast = _NAME_ADDR_FAST.fullmatch(value)
    if fast is not None:
        quoted, token, uri_text, params_text = fast.groups()
        return NameAddr(
            parse_uri(uri_text),
            quoted if quoted is not None else (token.strip() or None),
            _split_params(params_text) if params_text is not None else [],
        )
    if not value:
        raise ParseError("empty address")
    display: str | None = None
    index = 0
    if value.startswith('"'):
        display, index = _read_quoted(value, 0)
        while index < len(value) and value[index] in " \t":
            index += 1
        if index >= len(value) or value[index] != "<":
            raise ParseError(f"quoted display name without <uri> in {text!r}")
    lt = value.find("<", index)
    if lt >= 0:
        if display is None:
            token = value[:lt].strip()
            display = token or None
            if display is not None and any(c in display for c in '",;<>@'):
                raise ParseError(f"display name needs quotes in {text!r}")
        gt = value.find(">", lt)
        if gt < 0:
            raise ParseError(f"unterminated <uri> in {text!r}")
        uri = parse_uri(value[lt + 1 : gt])
        rest = value[gt + 1 :].strip()
    else:
        # addr-spec form: parameters after the URI belong to the header, and the
        # URI itself cannot carry parameters or headers (RFC 3261 section 20.10).
        uri_text, _, rest = value.partition(";")
        rest = ";" + rest if rest else ""
        if "?" in uri_text:
            raise ParseError(f"URI with headers must be in <...> in {text!r}")
        uri = parse_uri(uri_text)
    params: list[tuple[str, str | None]] = []
    if rest:
        if not rest.startswith(";"):
            raise ParseError(f"unexpected text after address in {text!r}")
        params = _split_params(rest[1:])
    return NameAddr(uri=uri, display_name=display, params=params)
