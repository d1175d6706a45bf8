"""Transports: asyncio adapters that move bytes between sockets and the SIP core.

`base` (types) and `via` (RFC 3261 section 18 / RFC 3581 addressing) are pure
and may be imported by the sans-IO core; `udp` and `tcp` hold the asyncio code
and are imported only by `b2bua.app`. This package's `__init__` deliberately
imports neither, so importing the pure parts never pulls in asyncio.
"""
