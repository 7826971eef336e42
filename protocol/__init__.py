"""The liveserver wire contract as code: sans-I/O, no asyncio, no server imports."""

from .codec import CODECS, JSON, MSGPACK, Codec, choose_codec
from .codes import CloseCode, ErrorCode, ProtocolError
from .offsets import parse_offset
from .ops import OPS, ClientOp, parse_op

__all__ = [
    "CODECS",
    "JSON",
    "MSGPACK",
    "ClientOp",
    "CloseCode",
    "Codec",
    "ErrorCode",
    "OPS",
    "ProtocolError",
    "choose_codec",
    "parse_offset",
    "parse_op",
]
