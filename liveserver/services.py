"""The objects one node shares between its endpoints, built at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from .config import Settings
from .engine import RoomEngine
from .hub import RoomHub
from .metrics import Metrics
from .session import OpHandler


@dataclass
class Services:
    settings: Settings
    redis: Redis
    redis_url: str
    engine: RoomEngine
    hub: RoomHub
    metrics: Metrics
    node_id: str
    op_handlers: dict[str, OpHandler] = field(default_factory=dict)
