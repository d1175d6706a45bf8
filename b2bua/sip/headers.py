"""Ordered, case-insensitive SIP header list.

Headers are kept as `(key, name, value)` triples in arrival order: `key` is the
lower-case long form used for look-ups (compact forms such as `v` and `i` are
expanded, RFC 3261 section 7.3.3), `name` is the spelling to write back, and
`value` is the raw text, parsed only when somebody asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# RFC 3261 section 7.3.3 plus the compact forms registered since (RFC 3265 o/u,
# RFC 3515 r, RFC 3892 b, RFC 3841 x/y/j/d/a).
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

# Headers whose grammar is a comma-separated list, so several values may share
# one line (RFC 3261 section 7.3.1). Others (notably Date, WWW-Authenticate and
# anything unknown) may hold commas inside one value and are never split.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "path",
        "service-route",
        "p-asserted-identity",
        "p-preferred-identity",
        "history-info",
        "diversion",
        "reason",
        "security-client",
        "security-server",
        "security-verify",
    }
)

# Canonical spellings for headers we create ourselves.
_CANONICAL_NAMES: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "min-se": "Min-SE",
    "rack": "RAck",
    "rseq": "RSeq",
    "mime-version": "MIME-Version",
}

_key_cache: dict[str, str] = {}


def header_key(name: str) -> str:
    """Return the look-up key of a header name: lower case, compact forms expanded."""
    key = _key_cache.get(name)
    if key is None:
        lowered = name.lower()
        key = COMPACT_FORMS.get(lowered, lowered)
        if len(_key_cache) < 4096:  # unknown names from peers must not grow it forever
            _key_cache[name] = key
    return key


def canonical_name(key: str) -> str:
    """Spelling used when we add a header: `call-id` -> `Call-ID`, `via` -> `Via`."""
    name = _CANONICAL_NAMES.get(key)
    if name is None:
        name = "-".join(part.capitalize() for part in key.split("-"))
    return name


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes or `<...>`."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    depth_angle = False
    in_quotes = False
    escaped = False
    start = 0
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            depth_angle = True
        elif char == ">":
            depth_angle = False
        elif char == "," and not depth_angle:
            part = value[start:index].strip()
            if part:
                parts.append(part)
            start = index + 1
    tail = value[start:].strip()
    if tail:
        parts.append(tail)
    return parts


class Headers:
    """The header section of a message, in order, looked up case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = [
            (header_key(name), name, value) for name, value in items
        ]

    @classmethod
    def _from_triples(cls, triples: list[tuple[str, str, str]]) -> Headers:
        headers = cls.__new__(cls)
        headers._items = triples
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, name, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        return any(item[0] == key for item in self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def keys(self) -> list[str]:
        """Look-up keys of every header line, in order (duplicates kept)."""
        return [item[0] for item in self._items]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first header line called `name`, or `default`."""
        key = _key_cache.get(name) or header_key(name)
        for item in self._items:
            if item[0] == key:
                return item[2]
        return default

    def get_lines(self, name: str) -> list[str]:
        """Raw values of every header line called `name`, without list splitting."""
        key = header_key(name)
        return [item[2] for item in self._items if item[0] == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`: all lines, each split at commas for list headers."""
        key = header_key(name)
        lines = [item[2] for item in self._items if item[0] == key]
        if key not in LIST_HEADERS:
            return lines
        values: list[str] = []
        for line in lines:
            values.extend(split_list(line))
        return values

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._items.append((header_key(name), name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (a new top Via, for instance)."""
        self._items.insert(0, (header_key(name), name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line called `name` by one line, kept where the first one was."""
        key = header_key(name)
        for index, item in enumerate(self._items):
            if item[0] == key:
                self._items[index] = (key, item[1], value)
                self._items[index + 1 :] = [i for i in self._items[index + 1 :] if i[0] != key]
                return
        self._items.append((key, name, value))

    def remove(self, name: str) -> int:
        """Drop every line called `name`; return how many were dropped."""
        key = header_key(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != key]
        return before - len(self._items)

    def remove_first(self, name: str) -> str | None:
        """Remove the first value of `name` (the top Via, say) and return it.

        For a list header whose first line holds several values, only the first
        value is removed and the rest of the line stays.
        """
        key = header_key(name)
        for index, item in enumerate(self._items):
            if item[0] != key:
                continue
            if key in LIST_HEADERS:
                values = split_list(item[2])
                if len(values) > 1:
                    self._items[index] = (key, item[1], ", ".join(values[1:]))
                    return values[0]
            del self._items[index]
            return item[2]
        return None

    def copy(self) -> Headers:
        """A shallow copy that can be changed without touching this one."""
        return Headers._from_triples(list(self._items))

    def triples(self) -> list[tuple[str, str, str]]:
        """The `(key, name, value)` list itself, for the serializer and for filters."""
        return self._items

    def replace_triples(self, triples: list[tuple[str, str, str]]) -> None:
        """Replace every line at once (used by header policies that filter in one pass)."""
        self._items = triples
