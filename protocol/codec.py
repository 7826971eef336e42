"""The two codecs of the viewer websocket: `lc1.json` (text) and `lc1.msgpack` (binary).

Both carry the same maps. `decode` only turns bytes into a map; what the map must
contain is checked by `protocol.ops`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import msgpack
import orjson

from .codes import ErrorCode, ProtocolError

JSON_SUBPROTOCOL = "lc1.json"
MSGPACK_SUBPROTOCOL = "lc1.msgpack"


class Codec(Protocol):
    subprotocol: str
    binary: bool

    def encode(self, frame: dict[str, Any]) -> bytes | str: ...

    def decode(self, data: bytes | str) -> dict[str, Any]: ...


def _require_map(value: Any, keys_are_strings: bool = False) -> dict[str, Any]:
    """`keys_are_strings`: the format guarantees it (a JSON object), so it is not checked."""
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame must be a map")
    if not keys_are_strings and not all(isinstance(k, str) for k in value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame keys must be strings")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class JsonCodec:
    subprotocol = JSON_SUBPROTOCOL
    binary = False

    def __init__(self) -> None:
        # Compact separators: every byte is sent to thousands of viewers.
        self._encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
        # NaN/Infinity are not JSON (RFC 8259) and would be echoed back as invalid JSON.
        # One decoder, not `json.loads(..., parse_constant=...)`, which builds a new
        # decoder (and its scanner) for every frame.
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def encode(self, frame: dict[str, Any]) -> bytes:
        # orjson writes the same compact UTF-8 JSON several times faster (every reply and
        # batch of a room goes through here). What it refuses (ints past 64 bits, keys that
        # are not strings) gets the standard encoder's rules instead.
        try:
            return orjson.dumps(frame)
        except TypeError:
            return self._encoder.encode(frame).encode()

    def decode(self, data: bytes | str) -> dict[str, Any]:
        try:  # orjson first (strict RFC 8259, UTF-8 only); what it refuses gets the standard
            value = orjson.loads(data)  # decoder's answer: UTF-16/32 in a binary frame, lone
        except orjson.JSONDecodeError:  # surrogate escapes, numbers past a double, errors
            return self._decode_std(data)
        return _require_map(value, keys_are_strings=True)

    def _decode_std(self, data: bytes | str) -> dict[str, Any]:
        try:
            if not isinstance(data, str):  # a JSON frame sent as binary: as json.loads reads bytes
                data = data.decode(json.detect_encoding(data), "surrogatepass")
            value = self._decoder.decode(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"not valid JSON: {exc}") from None
        except RecursionError:  # "[[[[..." deeper than the C scanner's recursion limit
            raise ProtocolError(ErrorCode.BAD_REQUEST, "not valid JSON: nested too deeply") from None
        return _require_map(value, keys_are_strings=True)


class MsgpackCodec:
    subprotocol = MSGPACK_SUBPROTOCOL
    binary = True

    def encode(self, frame: dict[str, Any]) -> bytes:
        return msgpack.packb(frame, use_bin_type=True)

    def decode(self, data: bytes | str) -> dict[str, Any]:
        if isinstance(data, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "lc1.msgpack expects binary frames")
        try:
            # strict_map_key rejects non-string keys early; limits stop a small frame
            # from declaring a huge container.
            value = msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                max_str_len=len(data),
                max_bin_len=len(data),
                max_array_len=len(data),
                max_map_len=len(data),
                max_ext_len=0,
            )
        except Exception as exc:  # msgpack raises many types for bad input
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"not valid msgpack: {type(exc).__name__}") from None
        return _require_map(value)


JSON = JsonCodec()
MSGPACK = MsgpackCodec()
CODECS: dict[str, Codec] = {JSON.subprotocol: JSON, MSGPACK.subprotocol: MSGPACK}


def choose_codec(offered: list[str]) -> Codec:
    """The codec for the first offered subprotocol we speak; JSON if none."""
    for name in offered:
        if name in CODECS:
            return CODECS[name]
    return JSON
