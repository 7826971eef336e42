"""The few things media uses from the rest of the server, imported in one place so a
package move is a one-file change here."""

from __future__ import annotations

from liveserver.core.auth import AuthError, Cohost, Identity, is_cohost_token, mint_cohost, verify, verify_cohost
from liveserver.core.config import Settings
from liveserver.core.names import valid_room
from liveserver.core.stallwatch import StallWatch
from liveserver.core.tasks import cancel_and_wait, timed
from liveserver.engine.embedded import EmbeddedRedis
from liveserver.engine.engine import RoomEngine
from liveserver.engine.scripts import ScriptRunner

__all__ = ["AuthError", "Cohost", "is_cohost_token", "mint_cohost", "verify_cohost", "EmbeddedRedis", "Identity", "RoomEngine", "ScriptRunner", "Settings", "StallWatch", "cancel_and_wait", "timed", "valid_room", "verify"]
