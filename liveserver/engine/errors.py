"""Errors of the storage layer that callers above the engine may tell apart."""

from __future__ import annotations

from redis.exceptions import ClusterDownError, ConnectionError, TimeoutError, TryAgainError


class NotReplicated(ConnectionError):
    """A durable write (a buy, a payment) ran on the primary but `WAIT` did not see
    LIVESERVER_REDIS_WAIT_REPLICAS replicas take it in time: it is not acknowledged, since
    a failover now could lose it. The caller retries with the same idempotency key and
    gets the same order back (once it is replicated) or a fresh attempt (if it was lost)."""


def is_unavailable(exc: BaseException) -> bool:
    """Redis (or the part of the Cluster that owns the key) could not be reached or could
    not make the write durable: a clean, retryable refusal, not a server fault."""
    return isinstance(exc, (ConnectionError, TimeoutError, ClusterDownError, TryAgainError, OSError))
