"""JWT identities (HS256, `LIVESERVER_SECRET`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


def verify(secret: str, token: str) -> Identity:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"bad token: {exc}") from None
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
