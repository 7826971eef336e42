"""`liveserver`: run a node, mint tokens, audit sales, verify lotteries."""

from __future__ import annotations

import argparse
import os
import sys

from liveserver.cli.offline import add_commands
from liveserver.core.config import Settings
from liveserver.media.cli import add_command as add_media_command


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    os.environ.setdefault("LIVESERVER_PUBLIC_URL", f"http://{shown_host}:{args.port}")
    if settings.secret_generated:
        # One random secret for the whole process (the app re-reads the environment).
        os.environ["LIVESERVER_SECRET"] = settings.secret
        os.environ["LIVESERVER_SECRET_GENERATED"] = "1"
    config = uvicorn.Config(
        "liveserver.edge.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        # uvicorn's httptools and websockets-sansio protocols, with leaner per-connection
        # state and no reference cycles left behind by a closed socket (edge/lean.py)
        http="liveserver.edge.lean:LeanHttpToolsProtocol" if settings.lean_ws else "httptools",
        ws="liveserver.edge.lean:LeanWebSocketProtocol" if settings.lean_ws else "websockets-sansio",
        # Frames up to 16x LIVESERVER_MAX_FRAME reach us and get a `too_long` reply;
        # only larger ones are cut by the websocket layer (close 1009).
        ws_max_size=settings.max_frame * 16,
        # Batches are encoded once per room; per-connection deflate would redo the work
        # for every viewer on a 2-core box. Compress at the proxy if bandwidth matters.
        ws_per_message_deflate=False,
        # Keepalive (0: off): a ping every interval; a peer silent until the next one is cut (1011).
        ws_ping_interval=settings.ws_ping_ms / 1000 or None,
        ws_ping_timeout=settings.ws_ping_ms / 1000 or None,
        lifespan="on",
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        # The app applies X-Forwarded-* itself, to everything but viewer sockets (edge/app.py)
        proxy_headers=False,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal: no traceback.
        return 130
    return 0


def _token(args: argparse.Namespace) -> int:
    from liveserver.core.auth import mint

    secret = os.environ.get("LIVESERVER_SECRET")
    if not secret:
        print("set LIVESERVER_SECRET to the server's secret to mint tokens it accepts", file=sys.stderr)
        return 2
    print(mint(secret, args.user, role=args.role, name=args.name, badge=args.badge, room=args.room, ttl_s=args.ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveserver", description="Real-time live-commerce server")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run one node (the default command)")
    serve.add_argument("--host", default=os.environ.get("LIVESERVER_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="mint a JWT for a user (needs LIVESERVER_SECRET)")
    token.add_argument("--user", required=True)
    token.add_argument("--role", default="viewer", choices=["viewer", "host", "admin"])
    token.add_argument("--name")
    token.add_argument("--badge")
    token.add_argument("--room", help="limit a host token to one room")
    token.add_argument("--ttl", type=int, default=86400, help="seconds the token is valid")
    token.set_defaults(func=_token)

    add_commands(sub)
    add_media_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
