"""Runs every shared vector in protocol/vectors/ through protocol/ (the JS client reuses
the same files). Format: protocol/README.md, "Test vectors".

- client_*.json: decode with the case's codec, then `parse_op`; `expect` is the decoded
  frame map (and `args` the validated args) or `{error: code, re?: id}`.
- server_*.json: decode gives `expect`, and encoding `expect` gives exactly `input`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from protocol import CODECS, ErrorCode, ProtocolError, parse_op

VECTORS = Path(__file__).resolve().parent.parent / "protocol" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))


def _cases(prefix: str) -> list[Any]:
    out = []
    for path in FILES:
        if not path.name.startswith(prefix):
            continue
        for i, case in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            out.append(pytest.param(case, id=f"{path.stem}[{i}] {case['codec']} {case['name']}"))
    return out


def _wire(case: dict[str, Any]) -> bytes | str:
    """The websocket frame: text for lc1.json, binary (base64 in the file) for lc1.msgpack,
    unless the case says otherwise with `frame`."""
    codec = CODECS[case["codec"]]
    kind = case.get("frame", "binary" if codec.binary else "text")
    assert kind in ("text", "binary")
    return base64.b64decode(case["input"], validate=True) if kind == "binary" else case["input"]


def test_vector_files_exist_and_are_well_formed() -> None:
    names = {p.name for p in FILES}
    assert {"client_frames.json", "server_frames.json"} <= names
    for path in FILES:
        cases = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(cases, list) and cases, path
        for case in cases:
            assert set(case) <= {"name", "codec", "frame", "input", "expect", "args"}, case
            assert case["codec"] in CODECS and isinstance(case["input"], str) and isinstance(case["expect"], dict)
            if path.name.startswith("client_") and "error" in case["expect"]:
                assert ErrorCode(case["expect"]["error"])  # a documented code
    both = [c for c in json.loads((VECTORS / "client_frames.json").read_text()) if "error" not in c["expect"]]
    assert {c["codec"] for c in both} == set(CODECS), "good frames are covered in both codecs"


@pytest.mark.parametrize("case", _cases("client_"))
def test_client_vector(case: dict[str, Any]) -> None:
    codec = CODECS[case["codec"]]
    expect = case["expect"]
    try:
        frame = codec.decode(_wire(case))
        op = parse_op(frame)
    except ProtocolError as exc:
        assert "error" in expect, f"unexpected {exc.code}: {exc.message}"
        assert exc.code == expect["error"]
        assert exc.frame_id == expect.get("re")
        return
    assert "error" not in expect, f"expected {expect['error']}, got {op}"
    assert frame == expect
    assert op.op == expect["op"]
    assert op.id == expect.get("id")
    if "args" in case:
        assert op.args == case["args"]


@pytest.mark.parametrize("case", _cases("server_"))
def test_server_vector(case: dict[str, Any]) -> None:
    codec = CODECS[case["codec"]]
    wire = _wire(case)
    assert codec.decode(wire) == case["expect"]
    # Byte for byte: a text frame's bytes are its UTF-8.
    assert codec.encode(case["expect"]) == (wire.encode() if isinstance(wire, str) else wire)
    assert case["expect"]["t"] in {"welcome", "batch", "reply", "pong", "error"}
