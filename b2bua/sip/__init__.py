"""Sans-IO SIP core: messages, URIs, stream framing and transactions.

Nothing here performs I/O or reads a clock: bytes and `now` go in, bytes,
events and deadlines come out.
"""

from b2bua.sip.errors import ParseError, SipError, TransactionError
from b2bua.sip.framing import DEFAULT_MAX_MESSAGE_SIZE, StreamFramer
from b2bua.sip.headers import Headers, header_key
from b2bua.sip.message import (
    CSeq,
    Message,
    Request,
    Response,
    Via,
    make_response,
    parse_cseq,
    parse_via,
)
from b2bua.sip.parser import parse_message
from b2bua.sip.uri import NameAddr, Uri, parse_name_addr, parse_uri

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "ParseError",
    "Request",
    "Response",
    "SipError",
    "StreamFramer",
    "TransactionError",
    "Uri",
    "Via",
    "header_key",
    "make_response",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]
