"""A real HTTP receiver for webhook tests (a threading HTTP server on 127.0.0.1).

It records every request (headers + raw body), and its behaviour is set per test:
`fail_first` (answer 500 to the first N attempts of every event id), `hang_s` (hold each
request that long before answering; `release()` lets held requests go), `status`."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from liveserver.webhooks.signing import verify


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    fail_first: int = 0
    hang_s: float = 0.0
    status: int = 200
    hits: list[Hit] = field(default_factory=list)
    arrived: int = 0  # requests received, answered or still held
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.arrived += 1
                if receiver.hang_s:
                    receiver._release.wait(receiver.hang_s)
                with receiver._lock:
                    event_id = headers.get("liveserver-event-id", "")
                    seen = sum(1 for h in receiver.hits if h.headers.get("liveserver-event-id") == event_id)
                    status = 500 if seen < receiver.fail_first else receiver.status
                    receiver.hits.append(Hit(headers, body, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def ok_events(self) -> dict[str, dict[str, Any]]:
        """event id -> event, for every event answered 2xx at least once."""
        with self._lock:
            return {h.headers["liveserver-event-id"]: h.event for h in self.hits if h.status < 300}

    def all_signed(self, secret: str) -> bool:
        with self._lock:
            return all(verify(secret, h.body, h.headers.get("liveserver-signature", "")) for h in self.hits)
