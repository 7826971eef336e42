"""`liveload`: run traffic scripts, record and replay rooms, benchmark peers.

Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or a bad script,
3 the run itself broke (target down, generator died).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_CHECKS, EXIT_USAGE, EXIT_BROKEN = 0, 1, 2, 3


def _secret(args: argparse.Namespace) -> str:
    secret = args.secret or os.environ.get("LIVESERVER_SECRET", "")
    if not secret:
        raise SystemExit("give --secret (or LIVESERVER_SECRET): the server's JWT secret, to mint viewer and host tokens")
    return secret


def _progress_printer(console: Any, live: Any) -> Any:
    from rich.table import Table

    def show(p: dict[str, Any]) -> None:
        last = p["last"] or {}
        totals = p["totals"]
        table = Table(show_header=True, title=f"liveload {p['elapsed']:.0f}/{p['duration']:.0f} s")
        for col in ("connected", "online", "deliv/s", "p50 ms", "p99 ms", "buys ok", "claims ok", "errors", "gaps", "loop lag ms"):
            table.add_column(col, justify="right")
        table.add_row(
            str(last.get("connected", 0)), str(last.get("online", 0)), f"{last.get('deliveries', 0):,}",
            f"{last.get('p50_ms', 0):.1f}", f"{last.get('p99_ms', 0):.1f}", str(totals.get("buy_ok", 0)),
            str(totals.get("claim_ok", 0)), str(totals.get("errors", 0)), str(totals.get("gaps", 0)),
            f"{last.get('loop_lag_ms', 0):.0f}",
        )
        if live is not None:
            live.update(table)
        elif int(p["elapsed"]) % 5 == 0:
            console.print(table)

    return show


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from .report import print_summary, write_reports
    from .runner import RunOptions, run
    from .scenario import ScenarioError, load_file, parse_check, scaled

    console = Console(stderr=False)
    try:
        scenario = load_file(args.script)
        extra = [parse_check(c) for c in args.check]
    except ScenarioError as exc:
        print(f"liveload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.duration:
        scenario.duration_s = args.duration
    if args.scale != 1.0:
        scenario = scaled(scenario, args.scale)
    options = RunOptions(
        targets=args.target or [],
        secret=_secret(args),
        workers=args.workers,
        connections_per_worker=args.connections_per_worker,
        room=args.room,
        extra_checks=extra,
    )
    live = Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal and not args.quiet else None
    show = None if args.quiet else _progress_printer(console, live)
    try:
        if live:
            with live:
                summary = run(scenario, options, show)
        else:
            summary = run(scenario, options, show)
    except KeyboardInterrupt:
        print("liveload: interrupted", file=sys.stderr)
        return EXIT_BROKEN
    except Exception as exc:
        print(f"liveload: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    print_summary(summary, console)
    out = Path(args.out) if args.out else None
    if out:
        paths = write_reports(summary, out)
        console.print(f"report: {paths['html']}  summary: {paths['json']}")
    return EXIT_OK if summary["passed"] else EXIT_CHECKS


def cmd_validate(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError, load_file

    code = EXIT_OK
    for path in args.scripts:
        try:
            s = load_file(path)
            print(f"{path}: ok ({len(s.phases)} phases, {s.max_viewers} viewers, {s.duration_s:g} s)")
        except ScenarioError as exc:
            print(f"liveload: {exc}", file=sys.stderr)
            code = EXIT_USAGE
    return code


def cmd_record(args: argparse.Namespace) -> int:
    from .record import serve_recorder

    return serve_recorder(args.upstream, args.out, args.host, args.port, args.room)


def cmd_replay(args: argparse.Namespace) -> int:
    import json

    from .replay import ReplayOptions, replay

    opts = ReplayOptions(target=args.target, secret=_secret(args), speed=args.speed, scale=args.scale,
                         room=args.room, codec=args.codec)
    result = replay(Path(args.file), opts)
    print(json.dumps(result, indent=2))
    return EXIT_OK if result["errors"] == 0 else EXIT_CHECKS


def cmd_bench(args: argparse.Namespace) -> int:
    peers = args.peers.split(",") if args.peers else None
    out = Path(args.out) if args.out else None
    if args.kind == "joins":
        from .bench.joins import JoinsOptions, run_joins

        viewers = args.viewers if args.viewers is not None else 5000
        return run_joins(JoinsOptions(viewers=viewers, concurrency=args.concurrency, generators=args.generators or 2,
                                      notices=args.notices, outage_notices=args.outage_notices,
                                      after_notices=args.after_notices, signal=args.restart_signal,
                                      baseline=not args.no_baseline, pin=not args.no_pin, out=out))
    if args.viewers is None:
        args.viewers = 1000
    if args.generators is None:
        args.generators = 1
    if args.kind in ("capacity", "idle"):
        from .bench.capacity import CapacityOptions, run_capacity

        copts = CapacityOptions(start=args.start, step=args.step, growth=args.growth, publishers=args.publishers, max_viewers=args.max_viewers,
                                stage_seconds=args.stage_seconds, settle_seconds=args.settle_seconds,
                                danmaku_rate=args.danmaku_rate, like_rate=args.like_rate, size=args.size,
                                probes=args.probes, generators=args.generators, servers=args.servers or 1,
                                p99_limit_ms=args.p99_limit, delivery_floor_pct=args.delivery_floor,
                                pin=not args.no_pin, peers=peers, install=args.install_peers, out=out,
                                idle_viewers=args.viewers)
        return run_capacity(copts, args.kind)
    from .bench.fanout import BenchOptions, run_bench

    opts = BenchOptions(viewers=args.viewers, rate=args.rate, seconds=args.seconds, size=args.size,
                        servers=args.servers or 2, peers=peers, install=args.install_peers, out=out,
                        generators=args.generators, redis=args.redis)
    return run_bench(opts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liveload", description="Load tests for liveserver rooms (see loadtest/README.md)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a traffic script")
    r.add_argument("script")
    r.add_argument("--target", action="append", help="node URL (repeat for several nodes); overrides the script")
    r.add_argument("--secret", help="server JWT secret (default: $LIVESERVER_SECRET)")
    r.add_argument("--out", help="directory for summary.json, report.html and plots")
    r.add_argument("--workers", type=int, help="generator processes (default: viewers / connections per worker)")
    r.add_argument("--connections-per-worker", type=int)
    r.add_argument("--room", help="room name (overrides the script; no run-id suffix)")
    r.add_argument("--duration", type=float, help="override duration_s")
    r.add_argument("--scale", type=float, default=1.0, help="multiply viewers, rates, buyers and stock (0.2 = a fifth)")
    r.add_argument("--check", action="append", default=[], help="an extra check, e.g. 'p99_latency_ms <= 100'")
    r.add_argument("--quiet", action="store_true", help="no live progress")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check traffic scripts without running them")
    v.add_argument("scripts", nargs="+")
    v.set_defaults(func=cmd_validate)

    rec = sub.add_parser("record", help="a recording proxy: point viewers and the host console at it")
    rec.add_argument("--upstream", required=True, help="the liveserver node, e.g. http://127.0.0.1:8000")
    rec.add_argument("--out", required=True, help="JSONL file to append inbound ops to")
    rec.add_argument("--host", default="127.0.0.1")
    rec.add_argument("--port", type=int, default=8200)
    rec.add_argument("--room", action="append", help="record only these rooms (default: all)")
    rec.set_defaults(func=cmd_record)

    rp = sub.add_parser("replay", help="play a recorded JSONL file back")
    rp.add_argument("file")
    rp.add_argument("--target", required=True)
    rp.add_argument("--secret")
    rp.add_argument("--speed", type=float, default=1.0, help="time compression (2 = twice as fast)")
    rp.add_argument("--scale", type=int, default=1, help="user multiplication (3 = each user becomes 3)")
    rp.add_argument("--room", help="replay into this room (default: the recorded one)")
    rp.add_argument("--codec", choices=["json", "msgpack"], default="msgpack")
    rp.set_defaults(func=cmd_replay)

    b = sub.add_parser("bench", help="peer benchmarks")
    b.add_argument("kind", choices=["fanout", "capacity", "idle", "joins"],
                   help="fanout: one publisher, fixed viewers; capacity: ramp viewers under a storm; idle: memory per idle viewer; "
                        "joins: a join storm on one node, then resume after a node restart")
    b.add_argument("--viewers", type=int, default=None, help="fanout: viewers (1000); idle: idle viewers (1000); joins: viewers (5000)")
    b.add_argument("--rate", type=float, default=20, help="published messages per second")
    b.add_argument("--seconds", type=float, default=20)
    b.add_argument("--size", type=int, default=100, help="message payload bytes")
    b.add_argument("--servers", type=int, help="server processes per peer (sharing one Redis); default 2 (fanout), 1 (capacity, idle)")
    b.add_argument("--generators", type=int, default=None, help="client generator processes (default 1; joins: 2)")
    b.add_argument("--peers", help="comma list (default: all): liveserver,websockets,socketio-node,python-socketio,channels")
    b.add_argument("--install-peers", action="store_true", help="npm/pip install the peer servers' dependencies first")
    b.add_argument("--out", help="write results JSON + markdown table here")
    b.add_argument("--start", type=int, default=50, help="capacity: viewers of the first stage")
    b.add_argument("--step", type=int, default=0, help="capacity: viewers added per stage (0: grow by --growth)")
    b.add_argument("--growth", type=float, default=1.5, help="capacity: next stage = last x this (when --step is 0)")
    b.add_argument("--publishers", type=int, default=20, help="capacity: publisher connections the storm is spread over")
    b.add_argument("--max-viewers", type=int, default=3000, help="capacity: stop ramping here")
    b.add_argument("--stage-seconds", type=float, default=5, help="capacity: measured seconds per stage")
    b.add_argument("--settle-seconds", type=float, default=1, help="capacity: wait after adding viewers")
    b.add_argument("--danmaku-rate", type=float, default=200, help="capacity: storm danmaku/s (timed)")
    b.add_argument("--like-rate", type=float, default=2000, help="capacity: storm likes/s (peers relay each as a message)")
    b.add_argument("--probes", type=int, default=10, help="capacity: viewers that decode and time (the rest only count bytes)")
    b.add_argument("--p99-limit", type=float, default=250, help="capacity: a stage fails above this p99 (ms)")
    b.add_argument("--delivery-floor", type=float, default=99.9, help="capacity: a stage fails under this delivery (%%)")
    b.add_argument("--no-pin", action="store_true", help="capacity/idle: do not pin servers and clients to separate cores")
    b.add_argument("--concurrency", type=int, default=500, help="joins: connects in flight during the storm, over all generators")
    b.add_argument("--notices", type=int, default=3, help="joins: notices the viewers see before the restart")
    b.add_argument("--outage-notices", type=int, default=2, help="joins: notices appended while the node is down")
    b.add_argument("--after-notices", type=int, default=2, help="joins: notices after the restart")
    b.add_argument("--restart-signal", choices=["kill", "term"], default="kill",
                   help="joins: stop the node with SIGKILL (a crash, default) or SIGTERM (graceful, close 1012)")
    b.add_argument("--no-baseline", action="store_true", help="joins: skip the bare websockets baseline")
    b.add_argument("--redis", choices=["single", "cluster"], default="single",
                   help="one private Redis, or a private 3-master Redis Cluster (liveserver peers only)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"liveload: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
