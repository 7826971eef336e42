"""The lottery draw rule, and its check from published data alone.

At start the server publishes `commit = sha256(seed)`; at the draw it publishes the seed
and the winners. Winners are the N entrants with the smallest
`hmac_sha256(key=seed, msg=user_id)` hex digest (ties, which need a SHA-256 collision,
break by user id). Anyone holding the entrant list can re-run `draw` and compare.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_seed() -> str:
    return secrets.token_hex(32)


def commit_of(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def ticket(seed: str, user: str) -> str:
    return hmac.new(seed.encode(), user.encode(), hashlib.sha256).hexdigest()


def draw(seed: str, entrants: list[str], winners: int) -> list[str]:
    ranked = sorted(set(entrants), key=lambda user: (ticket(seed, user), user))
    return ranked[:winners]


def verify(seed: str, commit: str, entrants: list[str], winners_n: int, winners: list[str]) -> list[str]:
    """Problems found (empty list = the draw checks out)."""
    problems = []
    if commit_of(seed) != commit:
        problems.append("sha256(seed) does not match the published commit")
    expected = draw(seed, entrants, winners_n)
    if expected != list(winners):
        problems.append(f"winners differ: expected {expected}, published {list(winners)}")
    return problems
