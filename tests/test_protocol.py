"""The sans-I/O protocol package on its own: codecs, op validation, frame builders,
offsets. No server, no Redis. Hypothesis shows that arbitrary input only ever raises
`ProtocolError`, never anything a handler would have to guess about."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import JSON, MSGPACK, OPS, ClientOp, CloseCode, ErrorCode, ProtocolError, choose_codec, frames, parse_op
from protocol.ops import MAX_ID_LEN, OP_FIELDS
from protocol.offsets import offset_key, parse_offset

CODECS = [JSON, MSGPACK]


def decode_and_parse(codec: Any, data: bytes | str) -> ClientOp:
    return parse_op(codec.decode(data))


# -- codecs ------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.subprotocol)
def test_codecs_round_trip_the_same_map(codec: Any) -> None:
    frame = frames.batch("5-1", "4-0", [{"k": "danmaku", "offset": "5-1", "ts": 5, "user": "u", "name": "名字", "text": "你好"}],
                         {"likes": 3, "online": 2, "card": None, "sales": {"r.s1": {"phase": "live", "stock": 9}}})
    encoded = codec.encode(frame)
    assert isinstance(encoded, bytes)  # a text frame's bytes are UTF-8
    assert codec.decode(encoded) == frame


def test_json_is_compact_utf8() -> None:
    assert JSON.encode({"t": "pong", "x": "弹幕"}) == '{"t":"pong","x":"弹幕"}'.encode()


def test_json_encodes_what_orjson_refuses_as_the_standard_encoder_does() -> None:
    # Past 64 bits, and keys that are not strings: orjson raises; the frame still goes out.
    assert JSON.encode({"n": 2**70, 1: "a"}) == b'{"n":1180591620717411303424,"1":"a"}'


@pytest.mark.parametrize("data", [
    '{"text":"\\ud83d"}',  # a lone surrogate escape: orjson refuses it, json reads it
    '{"n":1e400}',  # past a double
    '{"t":"x"}'.encode("utf-16"),  # JSON in UTF-16, in a binary frame
])
def test_json_decodes_what_orjson_refuses_as_the_standard_decoder_does(data: Any) -> None:
    assert JSON.decode(data) == json.loads(data)


def test_json_codec_accepts_json_in_a_binary_frame() -> None:
    assert JSON.decode(b'{"op":"ping"}') == {"op": "ping"}


def test_msgpack_codec_refuses_text_frames() -> None:
    with pytest.raises(ProtocolError) as e:
        MSGPACK.decode('{"op":"ping"}')
    assert e.value.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("data", ["[1,2]", "1", '"op"', "null", "true", "{", "", "\x00", "NaN", '{"op":Infinity}', "[" * 3000, '{"a":' * 3000])
def test_json_non_maps_and_garbage_are_bad_request(data: str) -> None:
    with pytest.raises(ProtocolError) as e:
        JSON.decode(data)
    assert e.value.code == ErrorCode.BAD_REQUEST
    assert e.value.frame_id is None


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01\x02", b"\x01", b"\xa2op", b"\x81\x01\x02", b"\x81\xa1a", b"\x91" * 3000,
                                  b"\xdf\xff\xff\xff\xff", b"\xd6\xff\x00\x00\x00\x00", b"\xc4\x01x"])
def test_msgpack_non_maps_and_garbage_are_bad_request(data: bytes) -> None:
    with pytest.raises(ProtocolError) as e:
        MSGPACK.decode(data)
    assert e.value.code == ErrorCode.BAD_REQUEST


def test_choose_codec() -> None:
    assert choose_codec([]) is JSON
    assert choose_codec(["lc1.msgpack"]) is MSGPACK
    assert choose_codec(["chat", "lc1.json", "lc1.msgpack"]) is JSON
    assert choose_codec(["v2.unknown"]) is JSON


# -- ops -------------------------------------------------------------------------------

def test_every_documented_op_parses() -> None:
    good = {
        "danmaku": {"text": "hi"},
        "like": {"n": 50},
        "buy": {"sale": "r.s1", "qty": 2, "key": "k1", "coupon": "r.c1"},
        "group_join": {"group": "r.g1", "team": "r.g1.t1", "key": "k1"},
        "follow": {"on": False},
        "invite": {"ref": "alice"},
        "prize_claim": {"lottery": "r.l1", "name": "Ann", "phone": "123", "address": "1 Lake Rd"},
        "claim": {"coupon": "r.c1"},
        "enter": {"lottery": "r.l1"},
        "vote": {"poll": "r.p1", "option": 0},
        "click": {"product": "tea"},
        "ping": {"client_ms": 1.5},
        "linkmic": {"action": "request"},
    }
    assert set(good) == set(OPS)
    for op, fields in good.items():
        parsed = parse_op({"op": op, "id": 7, **fields})
        assert parsed == ClientOp(op=op, id=7, args=fields)


def test_defaults_and_ignored_fields() -> None:
    assert parse_op({"op": "like"}).args == {"n": 1}
    assert parse_op({"op": "buy", "sale": "s", "key": "k"}).args == {"sale": "s", "key": "k", "qty": 1}
    assert parse_op({"op": "ping", "extra": [1, 2]}).args == {}
    assert parse_op({"op": "follow"}).args == {"on": True}
    assert parse_op({"op": "group_join", "group": "g", "key": "k"}).args == {"group": "g", "key": "k"}
    assert parse_op({"op": "like", "id": None}).id is None
    assert parse_op({"op": "like", "id": "abc"}).id == "abc"


@pytest.mark.parametrize(
    ("frame", "code", "re"),
    [
        ({}, ErrorCode.BAD_REQUEST, None),
        ({"id": 1}, ErrorCode.BAD_REQUEST, 1),
        ({"op": 5, "id": 1}, ErrorCode.BAD_REQUEST, 1),
        ({"op": "dance", "id": 2}, ErrorCode.BAD_REQUEST, 2),
        ({"op": "danmaku", "id": 3}, ErrorCode.BAD_REQUEST, 3),
        ({"op": "danmaku", "id": 3, "text": ""}, ErrorCode.BAD_REQUEST, 3),
        ({"op": "danmaku", "id": 3, "text": 12}, ErrorCode.BAD_REQUEST, 3),
        ({"op": "danmaku", "id": 3, "text": "x" * 4097}, ErrorCode.TOO_LONG, 3),
        ({"op": "like", "id": 4, "n": 0}, ErrorCode.BAD_REQUEST, 4),
        ({"op": "like", "id": 4, "n": 51}, ErrorCode.BAD_REQUEST, 4),
        ({"op": "like", "id": 4, "n": "5"}, ErrorCode.BAD_REQUEST, 4),
        ({"op": "like", "id": 4, "n": True}, ErrorCode.BAD_REQUEST, 4),
        ({"op": "like", "id": 4, "n": 2.0}, ErrorCode.BAD_REQUEST, 4),
        ({"op": "buy", "id": 5, "sale": "s"}, ErrorCode.BAD_REQUEST, 5),
        ({"op": "buy", "id": 5, "sale": "s", "key": "k", "qty": 100}, ErrorCode.BAD_REQUEST, 5),
        ({"op": "vote", "id": 6, "poll": "p", "option": 64}, ErrorCode.BAD_REQUEST, 6),
        ({"op": "buy", "id": 5, "sale": "s", "key": "k", "coupon": ""}, ErrorCode.BAD_REQUEST, 5),
        ({"op": "group_join", "id": 8, "group": "g"}, ErrorCode.BAD_REQUEST, 8),
        ({"op": "follow", "id": 9, "on": 1}, ErrorCode.BAD_REQUEST, 9),
        ({"op": "follow", "id": 9, "on": "yes"}, ErrorCode.BAD_REQUEST, 9),
        ({"op": "ping", "id": 7, "client_ms": "now"}, ErrorCode.BAD_REQUEST, 7),
        ({"op": "ping", "id": 7, "client_ms": float("inf")}, ErrorCode.BAD_REQUEST, 7),
        ({"op": "ping", "id": 7, "client_ms": float("nan")}, ErrorCode.BAD_REQUEST, 7),
        ({"op": "ping", "id": 7, "client_ms": 10**30}, ErrorCode.BAD_REQUEST, 7),
        # An unusable id is itself the error, and there is no id to reply to.
        ({"op": "ping", "id": 1.5}, ErrorCode.BAD_REQUEST, None),
        ({"op": "ping", "id": True}, ErrorCode.BAD_REQUEST, None),
        ({"op": "ping", "id": ""}, ErrorCode.BAD_REQUEST, None),
        ({"op": "ping", "id": "x" * (MAX_ID_LEN + 1)}, ErrorCode.BAD_REQUEST, None),
        ({"op": "ping", "id": 2**53}, ErrorCode.BAD_REQUEST, None),
        ({"op": "ping", "id": [1]}, ErrorCode.BAD_REQUEST, None),
    ],
)
def test_bad_ops_raise_the_documented_code(frame: dict[str, Any], code: ErrorCode, re: Any) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_op(frame)
    assert e.value.code == code
    assert e.value.frame_id == re


def test_string_field_limits_come_from_op_fields() -> None:
    for op, spec in OP_FIELDS.items():
        for name, (kind, _required, bound) in spec.items():
            if kind == "str":
                assert isinstance(bound, int) and bound > 0, (op, name)


# -- frames, codes, offsets ---------------------------------------------------------------

def test_frame_builders() -> None:
    w = frames.welcome("r", {"id": "u", "name": "U", "role": "viewer"}, 1, "e", "1-0", False, {"likes": 0})
    assert w["t"] == "welcome" and set(w) == {"t", "room", "user", "server_ms", "epoch", "offset", "recovered", "state"}
    assert frames.reply_ok(3) == {"t": "reply", "re": 3, "ok": True, "data": {}}
    assert frames.reply_error("a", ErrorCode.MUTED, "m", until_ms=5) == {
        "t": "reply", "re": "a", "ok": False, "error": {"code": "muted", "message": "m", "until_ms": 5}}
    assert frames.pong(1.5, 9) == {"t": "pong", "client_ms": 1.5, "server_ms": 9}
    assert frames.error(ErrorCode.BAD_REQUEST, "x") == {"t": "error", "code": "bad_request", "message": "x"}
    assert frames.batch("2-0", "1-0", [], {}) == {"t": "batch", "offset": "2-0", "prev": "1-0", "events": [], "state": {}}


def test_codes_match_the_design() -> None:
    assert [c.value for c in ErrorCode] == [
        "bad_request", "unauthorized", "forbidden", "muted", "rate_limited", "not_found", "not_started", "ended",
        "sold_out", "limit_reached", "already_claimed", "too_long", "blocked_word", "internal"]
    assert {c.value for c in CloseCode} == {1012, 1013, 4401, 4403, 4404, 4408, 4429}


def test_offsets() -> None:
    assert parse_offset("0-0") == (0, 0)
    assert parse_offset("1700000000000-12") == (1700000000000, 12)
    for bad in ["", "1", "1-", "-1", "a-b", "1-2-3", " 1-2", "1-2\n", "99999999999999999999-0", None, 5]:
        assert parse_offset(bad) is None, bad  # type: ignore[arg-type]
    # Compared as integer pairs, not as strings.
    assert offset_key("10-0") > offset_key("9-5")
    assert offset_key("9-10") > offset_key("9-9")
    with pytest.raises(ValueError):
        offset_key("nope")


# -- hypothesis: nothing but ProtocolError ------------------------------------------------

# Named functions, not lambdas: hypothesis describes a lambda by parsing its source with
# `ast`, which CPython 3.11.7 can fail with a SystemError (gh-106905; tests/test_fuzz_stateful.py).
def _containers(inner: Any) -> Any:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


def _with_some_op(d: dict[str, Any]) -> Any:
    def put_op(op: str) -> dict[str, Any]:
        return {**d, "op": op}
    return st.sampled_from(sorted(OPS) + ["nope", ""]).map(put_op) | st.just(d)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20), _containers, max_leaves=20)
field_names = st.sampled_from(sorted({"op", "id", *(f for spec in OP_FIELDS.values() for f in spec)})) | st.text(max_size=6)
op_frames = st.dictionaries(field_names, json_values, max_size=6).flatmap(_with_some_op)


def _only_protocol_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert exc.frame_id is None or isinstance(exc.frame_id, (int, str))
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes) -> None:
    for codec in CODECS:
        frame = _only_protocol_errors(codec.decode, data)
        if frame is not None:
            assert isinstance(frame, dict)
            _only_protocol_errors(parse_op, frame)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_protocol_error(data: str) -> None:
    frame = _only_protocol_errors(JSON.decode, data)
    if frame is not None:
        _only_protocol_errors(parse_op, frame)


@settings(max_examples=250, deadline=None)
@given(op_frames)
def test_arbitrary_maps_only_raise_protocol_error(frame: dict[str, Any]) -> None:
    parsed = _only_protocol_errors(parse_op, frame)
    if parsed is None:
        return
    # What parse_op accepts is an op we know, with typed fields that both codecs can
    # carry back to a client (a pong echoes client_ms).
    assert parsed.op in OPS
    for name, value in parsed.args.items():
        kind, _required, bound = OP_FIELDS[parsed.op][name]
        if kind == "str":
            assert isinstance(value, str) and 0 < len(value) <= bound
        elif kind == "int":
            assert type(value) is int and bound[0] <= value <= bound[1]
        elif kind == "bool":
            assert type(value) is bool
        else:
            assert not isinstance(value, bool) and math.isfinite(value)
    echoed = {"t": "pong", "args": parsed.args, "re": parsed.id}
    assert json.loads(JSON.encode(echoed)) == echoed
    assert msgpack.unpackb(MSGPACK.encode(echoed), raw=False) == echoed


@settings(max_examples=200, deadline=None)
@given(op_frames)
def test_both_codecs_agree(frame: dict[str, Any]) -> None:
    """The same map sent over either codec decodes and validates the same way."""
    try:
        as_json = json.dumps(frame, allow_nan=False)
    except ValueError:
        return  # NaN/inf: not expressible in JSON
    try:
        as_msgpack = msgpack.packb(frame, use_bin_type=True)
    except (OverflowError, ValueError):
        return  # ints beyond 64 bits: not expressible in msgpack
    outcomes = []
    for codec, data in ((JSON, as_json), (MSGPACK, as_msgpack)):
        try:
            outcomes.append(("ok", decode_and_parse(codec, data)))
        except ProtocolError as exc:
            outcomes.append(("error", exc.code, exc.frame_id))
    assert outcomes[0] == outcomes[1]
