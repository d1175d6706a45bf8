"""Where a message came from or goes to: `(transport, host, port)`.

A plain named tuple so it hashes, compares and unpacks cheaply; the transport
adapters build one per datagram or connection. `transport` is upper case as in
a Via (`UDP`, `TCP`, `TLS`).
"""

from __future__ import annotations

from typing import NamedTuple


class Address(NamedTuple):
    """A transport endpoint: `Address("UDP", "192.0.2.1", 5060)`."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """True for stream transports, where RFC 3261 section 17 skips retransmissions."""
        return self.transport != "UDP"
