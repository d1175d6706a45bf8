"""Value checks for configuration fields: TOML values in, typed values out.

Each check raises `_Invalid` with a message; `b2bua.config` adds the key to it
and collects every problem before anything starts. Nothing here reads a file or
the environment (that is `b2bua.config`'s job alone).
"""

from __future__ import annotations

import ipaddress
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Invalid(Exception):
    """Raised by a field check with `(key suffix, message)` pairs; the loader adds the key."""

    def __init__(self, message: str = "", *, items: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.items = items if items is not None else [("", message)]


@dataclass(frozen=True)
class SocketAddress:
    """`transport:host:port`, e.g. a SIP listener or a trunk's address."""

    transport: str
    host: str
    port: int

    @property
    def host_port(self) -> str:
        """`host:port`, with IPv6 hosts bracketed."""
        return _bracketed(self.host, self.port)

    def __str__(self) -> str:
        return f"{self.transport}:{self.host_port}"


def _bracketed(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class HostPort:
    """`host:port` without a transport, e.g. the HTTP listener."""

    host: str
    port: int

    def __str__(self) -> str:
        return _bracketed(self.host, self.port)


Check = Callable[[Any], Any]


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


def _integer(minimum: int = 0) -> Check:
    def check(value: Any) -> int:
        # TOML booleans are Python ints; `max_calls = true` must not mean 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_type_name(value)}")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}")
        return value

    return check


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number, got {_type_name(value)}")
    if value <= 0:
        raise _Invalid(f"must be greater than 0, got {value}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_type_name(value)}")
    return value


def _string(*, nonempty: bool = True) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {_type_name(value)}")
        if nonempty and not value.strip():
            raise _Invalid("must not be empty")
        return value

    return check


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return str(value)

    return check


def _regex(value: Any) -> str:
    text: str = _string()(value)
    try:
        re.compile(text)
    except re.error as error:
        raise _Invalid(f"invalid regular expression: {error}") from None
    return text


def _array(item: Check, *, nonempty: bool = False) -> Check:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected an array, got {_type_name(value)}")
        if nonempty and not value:
            raise _Invalid("must not be empty")
        problems: list[tuple[str, str]] = []
        items: list[Any] = []
        for index, element in enumerate(value):
            try:
                items.append(item(element))
            except _Invalid as error:
                problems.extend((f"[{index}]{suffix}", text) for suffix, text in error.items)
        if problems:
            raise _Invalid(items=problems)
        return tuple(items)

    return check


def _split_host_port(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif ":" in host or not host or any(c.isspace() for c in host):
        return None
    return host, int(port)


def _socket_address(transports: tuple[str, ...]) -> Check:
    expected = " or ".join(f'"{name}:host:port"' for name in transports)

    def check(value: Any) -> SocketAddress:
        if not isinstance(value, str):
            raise _Invalid(f"expected {expected}, got {_type_name(value)}")
        transport, sep, rest = value.partition(":")
        parts = _split_host_port(rest) if sep else None
        if transport.lower() not in transports or parts is None:
            raise _Invalid(f"expected {expected}, got {value!r}")
        return SocketAddress(transport.lower(), parts[0], parts[1])

    return check


def _host_port(value: Any) -> HostPort:
    if not isinstance(value, str) or (parts := _split_host_port(value)) is None:
        raise _Invalid(f'expected "host:port", got {value!r}')
    return HostPort(*parts)


def _network(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise _Invalid(f"expected a CIDR string, got {_type_name(value)}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise _Invalid(f"expected a CIDR such as '192.0.2.0/24': {error}") from None


def _store_url(value: Any) -> str:
    text: str = _string()(value)
    if not text.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise _Invalid(f'expected "sqlite:///path" or "postgresql://...", got {text!r}')
    return text


def _log_modules(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a table of module = level, got {_type_name(value)}")
    expected = f"expected one of {', '.join(LOG_LEVELS)}"
    problems = [
        (f"[{k!r}]", f"{expected}, got {v!r}") for k, v in value.items() if v not in LOG_LEVELS
    ]
    if problems:
        raise _Invalid(items=problems)
    return types.MappingProxyType(dict(value))


def checked(check: Check, *, required: bool = False) -> dict[str, Any]:
    """Field metadata: the check turning the TOML value into the field value; see SipConfig."""
    return {"check": check, "required": required}
