"""liveserver: a real-time live-commerce server (websocket rooms over Redis)."""

__version__ = "0.1.0"
