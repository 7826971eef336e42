"""The objects one node shares between its endpoints, built at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from liveserver.commerce import Commerce
from liveserver.core.config import Settings
from liveserver.core.metrics import Metrics
from liveserver.core.ops import DanmakuListener, LeaveListener, OpHandler
from liveserver.engine.engine import RoomEngine
from liveserver.hub.hub import RoomHub


@dataclass
class Services:
    settings: Settings
    redis_url: str
    engine: RoomEngine
    hub: RoomHub
    commerce: Commerce
    metrics: Metrics
    node_id: str
    op_handlers: dict[str, OpHandler] = field(default_factory=dict)
    danmaku_listeners: list[DanmakuListener] = field(default_factory=list)
    leave_listeners: list[LeaveListener] = field(default_factory=list)
