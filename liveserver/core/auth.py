"""JWT identities (HS256, `LIVESERVER_SECRET`).

Tokens are minted with PyJWT. A viewer's or host's token is checked by `verify`, which
reads the one form liveserver accepts (HS256, compact, unpadded base64url, no `crit`)
strictly and by hand: PyJWT's general decode took ~45 us a token, about a twentieth of
a join, and every viewer of a join storm or a node restart brings one. It refuses
everything PyJWT refuses (tests/test_token_verify.py checks the two against each other
on generated tokens); co-host tokens, rare, still go through PyJWT."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

ROLES = ("viewer", "host", "admin")


class AuthError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    name: str
    role: str  # viewer | host | admin | guest
    badge: str | None = None
    room: str | None = None  # a host token may be limited to one room

    @property
    def is_guest(self) -> bool:
        return self.role == "guest"

    def can_host(self, room: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "host" and (self.room is None or self.room == room)

    def public(self) -> dict[str, str]:
        out = {"id": self.id, "name": self.name, "role": self.role}
        if self.badge:
            out["badge"] = self.badge
        return out


def guest(conn_id: str) -> Identity:
    return Identity(id=f"guest:{conn_id}", name="guest", role="guest")


def mint(secret: str, user: str, role: str = "viewer", name: str | None = None,
         badge: str | None = None, room: str | None = None, ttl_s: int = 86400) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    claims: dict[str, object] = {"sub": user, "name": name or user, "role": role, "exp": int(time.time()) + ttl_s}
    if badge:
        claims["badge"] = badge
    if room:
        claims["room"] = room
    return jwt.encode(claims, secret, algorithm="HS256")


_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_GOOD_HEADERS: set[bytes] = set()  # header segments already checked (a header holds no secret)


def _segment(segment: bytes, name: str) -> bytes:
    """A base64url segment, strictly: its alphabet, no padding, and only the canonical
    encoding of what it decodes to (no stray low bits: GHSA-hxm8-2xgr-2p9m)."""
    if len(segment) % 4 == 1 or _BASE64URL.fullmatch(segment) is None:
        raise AuthError(f"bad token: invalid {name} encoding")
    try:
        raw = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AuthError(f"bad token: invalid {name} encoding") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment:
        raise AuthError(f"bad token: invalid {name} encoding")
    return raw


def _json_object(raw: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise AuthError(f"bad token: invalid {name}") from None
    if not isinstance(value, dict):
        raise AuthError(f"bad token: the {name} must be a JSON object")
    return value


def _time_claim(claims: dict[str, Any], name: str) -> int | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise AuthError(f"bad token: the {name} claim must be a number")
    return int(value)


def decode_claims(secret: str, token: str) -> dict[str, Any]:
    """The claims of an HS256 token signed with `secret`, checked as PyJWT's
    `decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})`
    would, or stricter; AuthError otherwise ("token expired" for an expired one)."""
    try:
        data = token.encode("ascii")
    except UnicodeEncodeError:
        raise AuthError("bad token: not ASCII") from None
    parts = data.split(b".")
    if len(parts) != 3:
        raise AuthError("bad token: not three segments")
    head, body, signature = parts
    if head not in _GOOD_HEADERS:
        header = _json_object(_segment(head, "header"), "header")
        if header.get("alg") != "HS256":
            raise AuthError("bad token: the alg must be HS256")
        if "crit" in header or header.get("b64", True) is not True or not isinstance(header.get("kid", ""), str):
            raise AuthError("bad token: unsupported header")
        if len(_GOOD_HEADERS) < 16:  # every token of a deployment has the same one or two
            _GOOD_HEADERS.add(head)
    expected = hmac.digest(secret.encode(), head + b"." + body, "sha256")
    if not hmac.compare_digest(expected, _segment(signature, "signature")):
        raise AuthError("bad token: Signature verification failed")
    claims = _json_object(_segment(body, "payload"), "payload")
    for name in ("sub", "exp"):
        if name not in claims:
            raise AuthError(f'bad token: Token is missing the "{name}" claim')
    now = time.time()
    exp = _time_claim(claims, "exp")
    if exp is not None and exp <= now:
        raise AuthError("token expired")
    for name in ("nbf", "iat"):
        at = _time_claim(claims, name)
        if at is not None and at > now:
            raise AuthError(f"bad token: The token is not yet valid ({name})")
    if "aud" in claims:  # no audience is ever expected: PyJWT refuses a token that names one
        raise AuthError("bad token: Invalid audience")
    for name in ("sub", "jti", "iss"):
        if name in claims and not isinstance(claims[name], str):
            raise AuthError(f"bad token: the {name} claim must be a string")
    return claims


def verify(secret: str, token: str) -> Identity:
    claims = decode_claims(secret, token)
    sub, role = claims.get("sub"), claims.get("role", "viewer")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise AuthError("bad token: sub must be a string of 1..128 chars")
    if role not in ROLES:
        raise AuthError(f"bad token: unknown role {role!r}")
    name = claims.get("name") if isinstance(claims.get("name"), str) else sub
    badge = claims.get("badge") if isinstance(claims.get("badge"), str) else None
    room = claims.get("room") if isinstance(claims.get("room"), str) else None
    return Identity(id=sub, name=name[:64], role=role, badge=badge, room=room)


# -- co-host (link-mic) tokens ------------------------------------------------------------
# Role `cohost` is not in ROLES on purpose: `verify` refuses it, so a co-host token opens
# no websocket and no host API; only the media process's WHIP endpoint takes it, for its
# room, before `exp`, once (its `jti` is recorded in Redis and consumed by the publish).
COHOST = "cohost"


@dataclass(frozen=True, slots=True)
class Cohost:
    user: str
    name: str
    room: str
    jti: str
    exp: int


def mint_cohost(secret: str, user: str, name: str, room: str, jti: str, ttl_s: int) -> str:
    claims = {"sub": user, "name": name, "role": COHOST, "room": room, "jti": jti, "exp": int(time.time()) + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


def is_cohost_token(token: str) -> bool:
    """Whether `token` claims to be a co-host token (unverified peek, to pick the check)."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("role") == COHOST
    except jwt.PyJWTError:
        return False


def verify_cohost(secret: str, token: str, room: str) -> Cohost:
    """A co-host token's claims; AuthError when bad, expired or for another room."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp", "jti", "room"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("co-host token expired") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"bad token: {exc}") from None
    if claims.get("role") != COHOST:
        raise AuthError("not a co-host token")
    if claims.get("room") != room:
        raise AuthError("this co-host token is for another room")
    sub, jti, name = claims.get("sub"), claims.get("jti"), claims.get("name")
    if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
        raise AuthError("bad token: sub and jti must be strings")
    return Cohost(sub, name[:64] if isinstance(name, str) else sub, room, jti, int(claims["exp"]))
