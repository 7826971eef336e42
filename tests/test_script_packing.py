"""`pack_evalsha` packs what redis-py would send for the same EVALSHA, byte for byte
(the node packs buys itself for speed; Redis must not see a difference)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from liveserver.engine.scripts import LuaScript, pack_evalsha

SCRIPT = LuaScript.load("buy")
REDIS_PY = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)

_keys = st.lists(st.text(min_size=1, max_size=40), max_size=12)
_args = st.lists(st.one_of(st.text(max_size=60), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                           st.binary(max_size=40)), max_size=12)


@given(_keys, _args)
def test_pack_evalsha_is_what_redis_py_packs(keys: list[str], args: list[Any]) -> None:
    expected = b"".join(REDIS_PY.pack("EVALSHA", SCRIPT.sha, len(keys), *keys, *args))
    assert pack_evalsha(SCRIPT, keys, args) == expected
    assert pack_evalsha(SCRIPT, keys, args) == expected  # the second time, from the caches
